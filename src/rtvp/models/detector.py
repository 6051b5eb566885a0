"""RTVPNet (paper 001 §4, DESIGN.md §3): expert + MobileSAM prompts + text interaction + contrastive head.

Forward pass for images I (B, C, H, W) and prompts T (K, Dt) or (B, K, Dt):

1. ``T = L2norm(Linear(Dt -> D)(T))`` (B, K, D).
2. Expert: ``[F_e^3, F_e^4, F_e^5] = neck(backbone(I), T)``; with ``t2v`` the neck's C2f blocks are T-CSP (Eq.10).
3. SAM (``sam``): a 3-channel view of I resized to ``cfg.sam_size`` -> MobileSAM -> bilinear to the stride-16 grid;
   EDP (``edp``) or a plain projection turns it into coarse prompts V_c^i (``projection.py``). Without SAM and with
   ``rvp``, the expert's own features are the coarse prompts.
4. RVP (``rvp``): V_r^i = activation/uncertainty/sparse selection of V_c^i (``prompt.py``); otherwise V_r = V_c.
5. Injection: ``F^i = F_e^i + conv1x1(V_r^i)`` (zero-initialised: a fresh model's features equal its expert's).
6. V->T (``v2t``): ``T <- T + gamma * ...`` (Eq.11, gamma = 0 at start), then T is L2-normalised again.
7. Head: DFL boxes + contrastive logits ``alpha <e, T> + beta``.

No loss is computed here: ``RawOutputs`` carries what the loss needs (``aux_box_dist``, ``dp_pairs``).

Parameter groups: ``expert`` = the stage-1 expert weights (backbone + neck without the T->V extras; coupling lr
eta_c = ``coupling_ratio`` x base lr), ``sam`` = a trainable SAM encoder, ``other`` = everything else trainable.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from rtvp.errors import CheckpointError
from rtvp.models.config import ModelConfig
from rtvp.models.decode import make_anchors
from rtvp.models.expert import STRIDES, Expert, check_input, is_attention_param
from rtvp.models.head import DetectHead, TextHead
from rtvp.models.interaction import VisualTextUpdate, expand_mask
from rtvp.models.outputs import RawOutputs
from rtvp.models.projection import SAM_DIM, DomainProjection
from rtvp.models.prompt import RefinedPrompt
from rtvp.models.scales import get_scale


def sam_view(images: torch.Tensor) -> torch.Tensor:
    """3-channel view for SAM: 1 channel repeated, 2 -> (c0, c1, c0), 3 as is, > 3 -> the first three."""
    c = images.shape[1]
    return images[:, :3] if c >= 3 else images[:, [i % c for i in range(3)]]


class RTVPNet(nn.Module):
    """The full model; build it with :func:`build_model`.

    Args:
        cfg: model configuration.
        text_dim: Dt, width of the text encoder's embeddings.
        sam_encoder: SAM image encoder ((B, 3, H, W) in [0, 1] -> (B, 256, H/16, W/16)); required iff ``cfg.sam``.
    """

    def __init__(self, cfg: ModelConfig, text_dim: int, sam_encoder: nn.Module | None = None) -> None:
        super().__init__()
        if cfg.sam != (sam_encoder is not None):
            raise ValueError("pass a SAM encoder exactly when cfg.sam is true (use build_model)")
        self.cfg, self.text_dim = cfg, text_dim
        scale, dim = get_scale(cfg.scale), cfg.dim
        chans = scale.out_channels
        self.text_proj = nn.Linear(text_dim, dim)
        self.expert = Expert(scale, cfg.in_channels, dim if cfg.t2v else None, cfg.heads)
        self.sam = sam_encoder
        self.projection = (
            DomainProjection(chans, scale.prompt_dims, cfg.edp, cfg.mask_ratio, cfg.mask_block) if cfg.sam else None
        )
        prompt_dims = scale.prompt_dims if cfg.sam else chans
        self.prompt = (
            RefinedPrompt(prompt_dims, cfg.activation, cfg.patch_size, STRIDES, cfg.reg_max) if cfg.rvp else None
        )
        self.inject = None
        if cfg.sam or cfg.rvp:
            self.inject = nn.ModuleList(nn.Conv2d(cp, ce, 1) for cp, ce in zip(prompt_dims, chans, strict=True))
            for conv in self.inject:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        self.v2t = VisualTextUpdate(chans, dim) if cfg.v2t else None
        self.head = TextHead(chans, dim, cfg.reg_max)
        self._dp_active = True
        if not cfg.expert_update:
            for name, p in self.expert.named_parameters():
                if not is_attention_param(name):
                    p.requires_grad_(False)

    # ------------------------------------------------------------------ state
    @property
    def dp_active(self) -> bool:
        """Whether L_dp pairs are produced in training (False after early termination)."""
        return self._dp_active

    def set_dp_active(self, active: bool) -> None:
        """Toggle L_dp (early termination of the domain-projection objective)."""
        self._dp_active = bool(active)

    def train(self, mode: bool = True) -> RTVPNet:
        """Set train/eval mode; BatchNorm layers whose parameters are all frozen stay in eval mode."""
        super().train(mode)
        if mode:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                    m.eval()
        return self

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters split into ``expert``, ``sam`` and ``other`` (disjoint, frozen ones excluded)."""
        groups: dict[str, list[nn.Parameter]] = {"expert": [], "sam": [], "other": []}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("expert.") and not is_attention_param(name):
                groups["expert"].append(p)
            elif name.startswith("sam."):
                groups["sam"].append(p)
            else:
                groups["other"].append(p)
        return groups

    def load_expert(self, state_dict: Mapping[str, torch.Tensor],
                    class_text: torch.Tensor | None = None) -> dict[str, int]:
        """Copy stage-1 expert weights (``ExpertDetector.state_dict()``, or a bare ``Expert`` state dict).

        The expert's backbone + neck load strictly (only the T->V extras may be missing); the closed-set head's box
        branch is copied into this head's box branch (same architecture). With ``class_text`` the class branch
        also seeds the embedding branch (:meth:`TextHead.init_from_classifier`), so that at the start of stage 2
        the contrastive logits rank the classes as the expert did; without it the class branch is ignored.

        Args:
            state_dict: the expert's weights.
            class_text: ``(nc, Dt)`` text-encoder embeddings of the expert's classes, in its logit order.

        Returns:
            Number of tensors copied and levels seeded: ``{"expert": n, "box": m, "cls": levels}``.

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
        own = self.expert.state_dict()
        unexpected = sorted(set(expert_sd) - set(own))
        missing = sorted(k for k in set(own) - set(expert_sd) if not is_attention_param(k))
        bad = [
            f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
            for k, v in expert_sd.items()
            if k in own and v.shape != own[k].shape
        ]
        if unexpected or missing or bad:
            raise CheckpointError(
                f"expert weights do not fit scale '{self.cfg.scale}' with in_channels={self.cfg.in_channels}: "
                f"unexpected {unexpected[:5]}, missing {missing[:5]}, shape mismatch {bad[:5]}; "
                "train the expert with the same scale and channels"
            )
        with torch.no_grad():
            for k, v in expert_sd.items():
                own[k].copy_(v)
            box_own = self.head.box.state_dict()
            copied = 0
            if box_sd and set(box_sd) == set(box_own) and all(box_sd[k].shape == box_own[k].shape for k in box_sd):
                for k, v in box_sd.items():
                    box_own[k].copy_(v)
                copied = len(box_sd)
        levels = self._seed_embed_branch(state_dict, class_text) if class_text is not None else 0
        return {"expert": len(expert_sd), "box": copied, "cls": levels}

    def _seed_embed_branch(self, state_dict: Mapping[str, torch.Tensor], class_text: torch.Tensor) -> int:
        """Seed the embedding branch from the expert's class branch (``head.cls.*``); 0 when there is none."""
        cls_sd = {k.removeprefix("head."): v for k, v in state_dict.items() if k.startswith("head.cls.")}
        if "cls.0.2.weight" not in cls_sd:
            return 0
        nc = cls_sd["cls.0.2.weight"].shape[0]
        if class_text.shape != (nc, self.text_dim):
            raise ValueError(f"class_text must be ({nc}, {self.text_dim}) for this expert (one row per class), got "
                             f"{tuple(class_text.shape)}")
        channels = tuple(b[0].conv.in_channels for b in self.head.box)
        expert_head = DetectHead(channels, nc, self.cfg.reg_max)
        if any(cls_sd[k].shape != v.shape for k, v in expert_head.state_dict().items() if k in cls_sd):
            return 0
        expert_head.load_state_dict({**expert_head.state_dict(), **cls_sd})
        with torch.no_grad():
            prompts = F.normalize(self.text_proj(class_text.to(self.text_proj.weight)), dim=-1)
        return self.head.init_from_classifier(expert_head.cls, prompts)

    # ---------------------------------------------------------------- forward
    def sam_features(self, images: torch.Tensor) -> torch.Tensor:
        """SAM features for ``images`` (B, C, H, W) in [0, 1]: (B, 256, H/16, W/16) on the expert's stride-16 grid.

        Cacheable for un-augmented passes when SAM is frozen (pass them to ``forward(..., sam_features=...)``).
        """
        if self.sam is None:
            raise ValueError("this model has no SAM branch (cfg.sam is false)")
        h, w = images.shape[2:]
        x = sam_view(images)
        size = self.cfg.sam_size(h, w)
        if tuple(x.shape[2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        frozen = not any(p.requires_grad for p in self.sam.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            f = self.sam(x)
        if tuple(f.shape[2:]) != (h // 16, w // 16):
            f = F.interpolate(f, size=(h // 16, w // 16), mode="bilinear", align_corners=False)
        return f

    def _text(self, text: torch.Tensor, batch: int) -> torch.Tensor:
        if text.ndim == 2:
            text = text.unsqueeze(0).expand(batch, -1, -1)
        if text.ndim != 3 or text.shape[0] != batch or text.shape[2] != self.text_dim or text.shape[1] < 1:
            dt = self.text_dim
            raise ValueError(f"text must be (K, {dt}) or ({batch}, K, {dt}) with K >= 1, got {tuple(text.shape)}")
        return F.normalize(self.text_proj(text.to(self.text_proj.weight.dtype)), dim=-1)

    def _prompts(
        self, images: torch.Tensor, feats: list[torch.Tensor], sam_features: torch.Tensor | None
    ) -> tuple[list[torch.Tensor] | None, torch.Tensor | None, list, dict]:
        """Visual prompts per level (None without a prompt path), aux box logits, L_dp pairs and RVP maps."""
        prompts, aux, pairs, maps = None, None, [], {}
        if self.projection is not None:
            f4 = self.sam_features(images) if sam_features is None else sam_features
            with_dp = self.cfg.edp and self.training and self._dp_active
            prompts, pairs = self.projection(f4.to(feats[0].dtype), feats, with_dp)
        elif self.prompt is not None:
            prompts = feats
        if self.prompt is not None:
            prompts, aux, maps = self.prompt(prompts)
        return prompts, aux, pairs, maps

    def forward(
        self,
        images: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        sam_features: torch.Tensor | None = None,
    ) -> RawOutputs:
        """Detect the prompted categories.

        Args:
            images: (B, C_in, H, W) in [0, 1], H and W multiples of 32.
            text: (K, Dt) or (B, K, Dt) prompt embeddings from the text encoder.
            text_mask: (K,) or (B, K) bool, False for padded prompts (their logits are -1e4); None = all real.
            sam_features: optional precomputed ``self.sam_features(images)`` (B, 256, H/16, W/16).

        Returns:
            ``RawOutputs``; ``aux_box_dist`` only in training with RVP, ``dp_pairs`` only in training with EDP
            while L_dp is active.
        """
        check_input(images, self.cfg.in_channels)
        b = images.shape[0]
        t = self._text(text, b)
        mask = expand_mask(text_mask, b, t.shape[1])
        if mask is not None:
            mask = mask.to(t.device)
        feats = self.expert(images, t, mask) if self.cfg.t2v else self.expert(images)
        shapes = [(f.shape[2], f.shape[3]) for f in feats]
        prompts, aux, pairs, maps = self._prompts(images, feats, sam_features)
        if prompts is not None and self.inject is not None:
            feats = [f + conv(p) for f, conv, p in zip(feats, self.inject, prompts, strict=True)]
        if self.v2t is not None:
            t = F.normalize(self.v2t(feats, t), dim=-1)
        box, logits, embeddings = self.head(feats, t, mask)
        anchors, strides = make_anchors(shapes, STRIDES, images.device)
        return RawOutputs(
            box_dist=box,
            logits=logits,
            anchors=anchors,
            strides=strides,
            embeddings=embeddings,
            text=t,
            aux_box_dist=aux,
            dp_pairs=pairs,
            maps=maps,
            feat_shapes=shapes,
            reg_max=self.cfg.reg_max,
        )


def build_model(cfg: ModelConfig, text_dim: int, sam_encoder: nn.Module | None = None) -> RTVPNet:
    """Build RTVPNet from its config.

    Args:
        cfg: model configuration.
        text_dim: width Dt of the text encoder's embeddings (e.g. 384 for MiniLM, 512 for CLIP).
        sam_encoder: optional replacement SAM encoder (same contract as ``MobileSAMEncoder``); by default
            ``MobileSAMEncoder`` is built, loaded from ``cfg.sam_weights`` when given, and frozen per
            ``cfg.freeze_sam``.

    Returns:
        The model in training mode.

    Examples:
        >>> model = build_model(ModelConfig(scale="tiny", sam=False, edp=False), text_dim=16)
        >>> model(torch.rand(1, 3, 64, 64), torch.randn(3, 16)).logits.shape
        torch.Size([1, 84, 3])
    """
    if text_dim < 1:
        raise ValueError(f"text_dim must be >= 1, got {text_dim}")
    if cfg.sam and sam_encoder is None:
        from rtvp.models.sam import MobileSAMEncoder, load_mobile_sam

        sam_encoder = load_mobile_sam(cfg.sam_weights) if cfg.sam_weights is not None else MobileSAMEncoder()
    if sam_encoder is not None:
        if getattr(sam_encoder, "feature_dim", SAM_DIM) != SAM_DIM:
            raise ValueError(f"the SAM encoder must output {SAM_DIM} channels")
        if cfg.freeze_sam:
            if cfg.sam_weights is None:
                warnings.warn("SAM is frozen without weights: its random features carry no information", stacklevel=2)
            if hasattr(sam_encoder, "freeze"):
                sam_encoder.freeze()
            else:
                sam_encoder.requires_grad_(False)
        elif cfg.sam_weights is None:
            warnings.warn(
                "no sam_weights given: the SAM encoder trains from scratch (slow and data-hungry); pass the official "
                "mobile_sam.pt as model.sam_weights to freeze it instead",
                stacklevel=2,
            )
    return RTVPNet(cfg, text_dim, sam_encoder).train()
