"""Parameters per component and GFLOPs (``torch.utils.flop_counter.FlopCounterMode``).

FLOP convention: ``FlopCounterMode`` counts **2 FLOPs per multiply-add** for convolutions, (batched) matrix products
and SDPA attention, and nothing for element-wise ops (BatchNorm, activations, softmax, interpolation, pooling). This is
the same convention as the "GFLOPs" that YOLOv8 reports (thop MACs x 2): YOLOv8s counts 28.6 GFLOPs at 640 px here,
as in its model card. The model runs in eval mode on the ``meta`` device (shapes only, no compute, no memory), so
counting even ``l`` at 640 px takes about a second. The text encoder is not counted: prompts are encoded once per
vocabulary and cached, so it costs nothing per image.

Components (``component_of``): ``expert`` (backbone + neck as pre-trained in stage 1), ``sam`` (MobileSAM image
encoder), ``projection`` (EDP: SAM pyramid, FiLM, generator, aligners), ``prompt`` (RVP + injection convs),
``interaction`` (T->V attention extras inside the neck + V->T update), ``head`` (text projection + detection head),
``mask`` (the mask branch of ``model.masks``: prototypes + coefficient convs).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rtvp.models.expert import is_attention_param

COMPONENTS = ("expert", "sam", "projection", "prompt", "interaction", "head", "mask")
_TOP = {"sam": "sam", "projection": "projection", "prompt": "prompt", "inject": "prompt", "v2t": "interaction",
        "head": "head", "text_proj": "head", "seg": "mask"}  # fmt: skip


def component_of(name: str) -> str:
    """Component of a parameter/module name of ``RTVPNet`` (``expert.neck.top4.attn.bias`` -> ``interaction``)."""
    top = name.split(".", 1)[0]
    if top == "expert":
        return "interaction" if is_attention_param(name) else "expert"
    return _TOP.get(top, "other")


def param_report(model: nn.Module) -> dict[str, dict[str, int]]:
    """Parameter counts per component and in total.

    Returns:
        ``{component: {"total": n, "trainable": n, "frozen": n}}`` for every entry of ``COMPONENTS`` plus ``total``.
    """
    report = {c: {"total": 0, "trainable": 0, "frozen": 0} for c in (*COMPONENTS, "total")}
    for name, p in model.named_parameters():
        kind = "trainable" if p.requires_grad else "frozen"
        for c in (component_of(name), "total"):
            entry = report.setdefault(c, {"total": 0, "trainable": 0, "frozen": 0})
            entry["total"] += p.numel()
            entry[kind] += p.numel()
    return report


def _sum(counts: dict[Any, int]) -> int:
    return int(sum(counts.values()))


def flop_report(
    model: nn.Module, imgsz: int | tuple[int, int], num_prompts: int = 80, batch: int = 1
) -> dict[str, float]:
    """GFLOPs of one forward pass (eval mode), per component and in total.

    Args:
        model: an ``RTVPNet`` (per-component figures) or any detector taking ``images`` only (e.g. ``ExpertDetector``;
            only the total is meaningful).
        imgsz: input side (or (H, W)), multiples of 32.
        num_prompts: K, vocabulary size (T->V, V->T and the logits grow linearly with K).
        batch: batch size.

    Returns:
        ``{component: GFLOPs, ..., "total": GFLOPs}`` (components of ``COMPONENTS``; ``other`` if anything is left).
    """
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    meta = copy.deepcopy(model).to("meta").eval()
    prompted = hasattr(meta, "text_dim")  # RTVPNet takes (images, text); a closed-set detector images only
    images = torch.zeros(batch, meta.expert.in_channels, h, w, device="meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        if prompted:
            meta(images, torch.zeros(num_prompts, meta.text_dim, device="meta"))
        else:
            meta(images)
    counts = counter.get_flop_counts()
    root = type(meta).__name__
    total = _sum(counts.get("Global", {}))
    out = dict.fromkeys(COMPONENTS, 0.0)
    for key, value in counts.items():
        parts = key.split(".")
        if parts[0] != root or len(parts) < 2:
            continue
        sub = ".".join(parts[1:])
        # top-level modules; a container never called itself (ModuleList) appears through its children only
        if len(parts) == 2 or (len(parts) == 3 and ".".join(parts[:2]) not in counts):
            out[component_of(sub)] = out.get(component_of(sub), 0.0) + _sum(value)
        elif parts[-1] in ("attn", "attn_proj") and parts[1] == "expert":
            out["expert"] -= _sum(value)
            out["interaction"] += _sum(value)
    rest = total - sum(out.values())
    if abs(rest) > 0:
        out["other"] = rest
    out["total"] = total
    return {k: v / 1e9 for k, v in out.items()}
