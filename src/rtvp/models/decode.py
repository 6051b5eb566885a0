"""Anchors, DFL decoding and post-processing (score threshold + class-aware NMS via torchvision ``batched_nms``).

The box branch predicts, for each anchor and side (left, top, right, bottom), ``reg_max`` logits over distances
``0 .. reg_max - 1`` in stride units; the decoded distance is the softmax expectation. Anchors sit at cell centres
``(grid + 0.5) * stride`` in input pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import batched_nms

from rtvp.models.outputs import RawOutputs


def make_anchors(
    feat_shapes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres and strides for the flattened multi-level grid.

    Args:
        feat_shapes: ``[(H_i, W_i)]`` per level.
        strides: stride of each level in pixels.
        device: tensor device.
        dtype: tensor dtype.

    Returns:
        anchors ``(A, 2)`` as (x, y) pixels, strides ``(A,)``; row-major per level, levels concatenated.
    """
    points, steps = [], []
    for (h, w), s in zip(feat_shapes, strides, strict=True):
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((gx, gy), -1).view(-1, 2))
        steps.append(torch.full((h * w,), float(s), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(steps)


def dfl_distances(box_dist: torch.Tensor) -> torch.Tensor:
    """Expected ltrb distances in bins: ``(..., 4 * reg_max)`` logits -> ``(..., 4)``."""
    reg_max = box_dist.shape[-1] // 4
    prob = box_dist.unflatten(-1, (4, reg_max)).softmax(-1)
    bins = torch.arange(reg_max, device=box_dist.device, dtype=prob.dtype)
    return (prob * bins).sum(-1)


def decode_boxes(box_dist: torch.Tensor, anchors: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """DFL logits -> xyxy boxes in input pixels.

    Args:
        box_dist: ``(B, A, 4 * reg_max)``.
        anchors: ``(A, 2)`` centres (x, y) in pixels.
        strides: ``(A,)`` pixels per distance unit.

    Returns:
        ``(B, A, 4)`` boxes ``(x1, y1, x2, y2)``.
    """
    d = dfl_distances(box_dist) * strides.unsqueeze(-1)
    return torch.cat((anchors - d[..., :2], anchors + d[..., 2:]), -1)


def postprocess(
    outputs: RawOutputs,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    text_mask: torch.Tensor | None = None,
    max_nms: int = 30000,
    return_anchors: bool = False,
) -> list[tuple[torch.Tensor, ...]]:
    """Turn raw outputs into per-image detections (multi-label: one candidate per (anchor, prompt) above ``conf``).

    Args:
        outputs: model outputs; ``logits`` ``(B, A, K)``.
        conf: minimum sigmoid score.
        iou: class-aware NMS IoU threshold.
        max_det: detections kept per image (highest scores).
        text_mask: ``(K,)`` or ``(B, K)`` bool, False for padded prompts (never reported).
        max_nms: at most this many top-scoring candidates enter NMS per image.
        return_anchors: also return each detection's anchor index ``(N,)`` (to look up embeddings or maps).

    Returns:
        One ``(boxes (N, 4) xyxy pixels, scores (N,), labels (N,) long)`` per image, scores descending; labels index
        the vocabulary (the K prompts). With ``return_anchors`` a fourth element holds the anchor indices.
    """
    boxes = decode_boxes(outputs.box_dist.float(), outputs.anchors.float(), outputs.strides.float())
    scores = outputs.logits.float().sigmoid()
    if text_mask is not None:
        mask = text_mask.to(torch.bool).to(scores.device)
        scores = scores * (mask if mask.ndim == 2 else mask.unsqueeze(0)).unsqueeze(1)
    results = []
    for b in range(scores.shape[0]):
        cand = (scores[b] > conf).nonzero()
        sc = scores[b][cand[:, 0], cand[:, 1]]
        if sc.numel() > max_nms:
            top = sc.topk(max_nms).indices
            cand, sc = cand[top], sc[top]
        bx = boxes[b][cand[:, 0]]
        keep = batched_nms(bx, sc, cand[:, 1], iou)[:max_det]
        found = (bx[keep], sc[keep], cand[keep, 1])
        results.append((*found, cand[keep, 0]) if return_anchors else found)
    return results
