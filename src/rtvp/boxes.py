"""Box geometry on numpy arrays (no torch): format conversion and IoU matrices.

The torch side (training, decoding, NMS) uses ``torchvision.ops``; this module serves the numpy code that scores,
matches and grounds boxes after prediction (evaluation plots, annotation agreement, grounding, quality reports).
"""

from __future__ import annotations

import numpy as np


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """COCO ``(N, 4)`` ``[x, y, w, h]`` -> ``(N, 4)`` ``[x1, y1, x2, y2]``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of ``(N, 4)`` and ``(M, 4)`` xyxy boxes -> ``(N, M)``; degenerate boxes have zero area."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of ``(N, 4)`` and ``(M, 4)`` COCO xywh boxes -> ``(N, M)``."""
    return iou_xyxy(xywh_to_xyxy(a), xywh_to_xyxy(b))
