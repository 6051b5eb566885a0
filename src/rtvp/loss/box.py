"""Box geometry for the losses: element-wise IoU / CIoU and ltrb <-> xyxy conversion.

DFL decoding lives in ``rtvp.models.decode.decode_boxes`` (shared with post-processing).

All boxes are ``xyxy`` in pixels. Every function broadcasts over leading dimensions, so the assigner can compare
``(B, M, 1, 4)`` ground truth against ``(B, 1, A, 4)`` predictions without loops.
"""

from __future__ import annotations

import math

import torch

__all__ = ["bbox2dist", "box_iou_elementwise", "ciou", "ciou_loss", "dist2bbox"]


def _inter_union(b1: torch.Tensor, b2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Intersection and union areas of broadcast box pairs ``(..., 4)`` -> ``(...)``, ``(...)``."""
    x1, y1, x2, y2 = b1.unbind(-1)
    u1, v1, u2, v2 = b2.unbind(-1)
    iw = (torch.minimum(x2, u2) - torch.maximum(x1, u1)).clamp(min=0)
    ih = (torch.minimum(y2, v2) - torch.maximum(y1, v1)).clamp(min=0)
    inter = iw * ih
    union = (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter
    return inter, union


def box_iou_elementwise(b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of broadcast box pairs (not the all-pairs matrix of ``torchvision.ops.box_iou``).

    Args:
        b1: ``(..., 4)`` xyxy boxes.
        b2: ``(..., 4)`` xyxy boxes, broadcastable against ``b1``.
        eps: added to the union.

    Returns:
        ``(...)`` IoU in ``[0, 1]``.
    """
    inter, union = _inter_union(b1, b2)
    return inter / (union + eps)


def ciou(b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU (Zheng et al., AAAI 2020) of broadcast box pairs.

    ``CIoU = IoU - rho^2 / c^2 - alpha * v`` with ``rho`` the centre distance, ``c`` the diagonal of the smallest
    enclosing box, ``v = 4/pi^2 (atan(w_gt/h_gt) - atan(w/h))^2`` and ``alpha = v / (1 - IoU + v)`` computed under
    ``no_grad`` (the paper's convention, as in ``torchvision.ops.complete_box_iou_loss``).

    Args:
        b1: ``(..., 4)`` xyxy boxes (predictions).
        b2: ``(..., 4)`` xyxy boxes (targets), broadcastable against ``b1``.
        eps: numerical guard, same role as torchvision's ``eps``.

    Returns:
        ``(...)`` CIoU in ``[-1.5, 1]`` (``1 - ciou`` is ``complete_box_iou_loss``).
    """
    inter, union = _inter_union(b1, b2)
    iou = inter / (union + eps)
    x1, y1, x2, y2 = b1.unbind(-1)
    u1, v1, u2, v2 = b2.unbind(-1)
    cw = torch.maximum(x2, u2) - torch.minimum(x1, u1)
    ch = torch.maximum(y2, v2) - torch.minimum(y1, v1)
    c2 = cw**2 + ch**2 + eps
    rho2 = ((x1 + x2 - u1 - u2) ** 2 + (y1 + y2 - v1 - v2) ** 2) / 4
    w1, h1, w2, h2 = x2 - x1, y2 - y1, u2 - u1, v2 - v1
    v = (4 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return iou - rho2 / c2 - alpha * v


def ciou_loss(b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``1 - CIoU`` per broadcast pair ``(...)``; equals ``torchvision.ops.complete_box_iou_loss(reduction="none")``."""
    return 1.0 - ciou(b1, b2, eps)


def dist2bbox(dist: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Convert ltrb distances around anchor points to xyxy boxes (same units as the inputs).

    Args:
        dist: ``(..., A, 4)`` non-negative (left, top, right, bottom) distances.
        anchors: ``(A, 2)`` anchor centres ``(x, y)``.

    Returns:
        ``(..., A, 4)`` xyxy boxes.
    """
    lt, rb = dist.split(2, dim=-1)
    return torch.cat((anchors - lt, anchors + rb), dim=-1)


def bbox2dist(anchors: torch.Tensor, boxes: torch.Tensor, max_dist: float) -> torch.Tensor:
    """Convert xyxy boxes to ltrb distances from the anchor points, clamped to ``[0, max_dist]``.

    Args:
        anchors: ``(..., 2)`` anchor centres, broadcastable against ``boxes``.
        boxes: ``(..., 4)`` xyxy boxes, in the same units as ``anchors``.
        max_dist: upper clamp (``reg_max - 1 - 0.01`` for DFL targets in stride units).

    Returns:
        ``(..., 4)`` distances.
    """
    x1y1, x2y2 = boxes.split(2, dim=-1)
    return torch.cat((anchors - x1y1, x2y2 - anchors), dim=-1).clamp(0, max_dist)
