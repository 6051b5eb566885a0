"""Checkpoint surgery between the two training stages: copy a stage-1 expert into RTVPNet, freeze it.

Stage 2 starts from the stage-1 expert (paper §4.3): its backbone + neck load strictly, its box branch is copied into
RTVPNet's head, and (optionally) its class branch seeds the contrastive head's embedding branch so that the first
stage-2 logits rank the classes as the expert did.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from rtvp.errors import CheckpointError
from rtvp.models.detector import RTVPNet
from rtvp.models.expert import is_attention_param
from rtvp.models.head import DetectHead


def load_expert(model: RTVPNet, state_dict: Mapping[str, torch.Tensor],
                class_text: torch.Tensor | None = None) -> dict[str, int]:
    """Copy stage-1 expert weights (``ExpertDetector.state_dict()``, or a bare ``Expert`` state dict).

    The expert's backbone + neck load strictly (only the T->V extras may be missing); the closed-set head's box
    branch is copied into RTVPNet's box branch (same architecture). With ``class_text`` the class branch also seeds
    the embedding branch (:meth:`~rtvp.models.head.TextHead.init_from_classifier`), so that at the start of stage 2
    the contrastive logits rank the classes as the expert did; without it the class branch is ignored.

    Args:
        model: the RTVPNet to copy into (changed in place).
        state_dict: the expert's weights.
        class_text: ``(nc, Dt)`` text-encoder embeddings of the expert's classes, in its logit order.

    Returns:
        Number of tensors copied and levels seeded: ``{"expert": n, "box": m, "cls": levels, "seg": s}`` (``seg``:
        the mask branch, 0 when either model has none).

    Raises:
        CheckpointError: unexpected or missing expert keys, or shape mismatches (another scale/in_channels).
    """
    if "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]
    has_prefix = any(k.startswith("expert.") for k in state_dict)
    expert_sd = {
        k.removeprefix("expert."): v for k, v in state_dict.items() if not has_prefix or k.startswith("expert.")
    }
    box_sd = {k.removeprefix("head.box."): v for k, v in state_dict.items() if k.startswith("head.box.")}
    own = model.expert.state_dict()
    unexpected = sorted(set(expert_sd) - set(own))
    missing = sorted(k for k in set(own) - set(expert_sd) if not is_attention_param(k))
    bad = [
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in expert_sd.items()
        if k in own and v.shape != own[k].shape
    ]
    if unexpected or missing or bad:
        raise CheckpointError(
            f"expert weights do not fit scale '{model.scale}' with in_channels={model.in_channels}: "
            f"unexpected {unexpected[:5]}, missing {missing[:5]}, shape mismatch {bad[:5]}; "
            "train the expert with the same scale and channels"
        )
    with torch.no_grad():
        for k, v in expert_sd.items():
            own[k].copy_(v)
        box_own = model.head.box.state_dict()
        copied = 0
        if box_sd and set(box_sd) == set(box_own) and all(box_sd[k].shape == box_own[k].shape for k in box_sd):
            for k, v in box_sd.items():
                box_own[k].copy_(v)
            copied = len(box_sd)
    levels = _seed_embed_branch(model, state_dict, class_text) if class_text is not None else 0
    return {"expert": len(expert_sd), "box": copied, "cls": levels, "seg": _copy_mask_branch(model, state_dict)}


def _copy_mask_branch(model: RTVPNet, state_dict: Mapping[str, torch.Tensor]) -> int:
    """Copy the expert's mask branch (``seg.*``) into RTVPNet's (same architecture); number of tensors copied."""
    seg_sd = {k.removeprefix("seg."): v for k, v in state_dict.items() if k.startswith("seg.")}
    if model.seg is None or not seg_sd:
        return 0
    own = model.seg.state_dict()
    if set(seg_sd) != set(own) or any(seg_sd[k].shape != own[k].shape for k in seg_sd):
        return 0
    with torch.no_grad():
        for k, v in seg_sd.items():
            own[k].copy_(v)
    return len(seg_sd)

def _seed_embed_branch(model: RTVPNet, state_dict: Mapping[str, torch.Tensor], class_text: torch.Tensor) -> int:
    """Seed the embedding branch from the expert's class branch (``head.cls.*``); 0 when there is none."""
    cls_sd = {k.removeprefix("head."): v for k, v in state_dict.items() if k.startswith("head.cls.")}
    if "cls.0.2.weight" not in cls_sd:
        return 0
    nc = cls_sd["cls.0.2.weight"].shape[0]
    if class_text.shape != (nc, model.text_dim):
        raise ValueError(f"class_text must be ({nc}, {model.text_dim}) for this expert (one row per class), got "
                         f"{tuple(class_text.shape)}")
    channels = tuple(b[0].conv.in_channels for b in model.head.box)
    expert_head = DetectHead(channels, nc, model.reg_max)
    if any(cls_sd[k].shape != v.shape for k, v in expert_head.state_dict().items() if k in cls_sd):
        return 0
    expert_head.load_state_dict({**expert_head.state_dict(), **cls_sd})
    with torch.no_grad():
        prompts = F.normalize(model.text_proj(class_text.to(model.text_proj.weight)), dim=-1)
    return model.head.init_from_classifier(expert_head.cls, prompts)


def freeze_expert(model: RTVPNet) -> int:
    """Freeze the stage-1 expert weights of ``model`` (the T->V attention extras stay trainable).

    Returns:
        Number of parameter tensors frozen.
    """
    frozen = 0
    for name, p in model.expert.named_parameters():
        if not is_attention_param(name):
            p.requires_grad_(False)
            frozen += 1
    return frozen
