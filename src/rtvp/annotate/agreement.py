"""Agreement filter of the adversarial auto-annotation (paper 001 §3.1.2): keep what two detectors agree on.

Per image, the open-vocabulary model's boxes ``O`` and the closed-set expert's boxes ``E`` are compared through
one IoU matrix ``(|O|, |E|)``:

1. **Agreement**: a one-to-one assignment (Hungarian, maximum summed IoU) among same-class pairs with
   IoU >= ``iou``. Each agreed pair becomes one label: coordinates are the score-weighted mean
   ``(s_o b_o + s_e b_e) / (s_o + s_e)``, the score is the geometric mean ``sqrt(s_o s_e)`` (high only when both
   models are confident).
2. **Redundant**: a left-over box overlapping an agreed label with IoU >= ``iou`` is dropped (the detectors are
   multi-label, so one object often also yields a weaker box of another class; the paper's label filter "removes
   redundant labels").
3. Left-over boxes are paired one-to-one, class-agnostic, among pairs with IoU > ``min_iou``: a pair with
   IoU >= ``iou`` is a **class conflict** (it must differ in class, or step 1 would have taken it), a pair below
   ``iou`` is a **low agreement**.
4. Every box still unpaired is **one model only**.

Steps 3-4 go to the expert review queue. Everything is numpy on small per-image arrays; the only Python loops run
over the disagreements when they are turned into records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtvp.boxes import iou_xyxy

REASONS = ("class_conflict", "low_agreement", "one_model_only")
MODELS = ("ov", "expert")


@dataclass
class ImageLabels:
    """One detector's boxes on one image.

    Attributes:
        boxes: ``(N, 4)`` xyxy pixels.
        scores: ``(N,)`` confidences.
        cats: ``(N,)`` benchmark category ids.
    """

    boxes: np.ndarray
    scores: np.ndarray
    cats: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.cats = np.asarray(self.cats, dtype=np.int64).reshape(-1)
        if not len(self.boxes) == len(self.scores) == len(self.cats):
            raise ValueError(f"ImageLabels: {len(self.boxes)} boxes, {len(self.scores)} scores, {len(self.cats)} cats")

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class Agreement:
    """Result of :func:`agree` on one image.

    Attributes:
        boxes: ``(K, 4)`` fused xyxy boxes of the agreed labels.
        scores: ``(K,)`` fused scores.
        cats: ``(K,)`` category ids.
        score_ov: ``(K,)`` the open-vocabulary model's score of each agreed label.
        score_expert: ``(K,)`` the expert's score.
        iou: ``(K,)`` IoU of the two boxes behind each label.
        disagreements: review records ``{"reason", "iou", "candidates": [{"model", "bbox" xyxy, "score",
            "category_id"}]}``.
        redundant: number of left-over boxes dropped as duplicates of an agreed label.
    """

    boxes: np.ndarray
    scores: np.ndarray
    cats: np.ndarray
    score_ov: np.ndarray
    score_expert: np.ndarray
    iou: np.ndarray
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    redundant: int = 0


def _assign(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-weight one-to-one assignment; only pairs with positive weight are returned."""
    from scipy.optimize import linear_sum_assignment

    if weight.size == 0 or not (weight > 0).any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    r, c = linear_sum_assignment(weight, maximize=True)
    keep = weight[r, c] > 0
    return r[keep], c[keep]


def _candidate(model: str, labels: ImageLabels, i: int) -> dict[str, Any]:
    return {"model": model, "bbox": [round(float(v), 2) for v in labels.boxes[i]],
            "score": round(float(labels.scores[i]), 5), "category_id": int(labels.cats[i])}


def agree(ov: ImageLabels, expert: ImageLabels, iou: float = 0.5, min_iou: float = 0.1) -> Agreement:
    """Split two detectors' boxes on one image into agreed labels and review records (module docstring).

    Args:
        ov: the open-vocabulary model's boxes.
        expert: the closed-set expert's boxes.
        iou: agreement IoU threshold.
        min_iou: pairs at or below this IoU are different objects (each then "one model only").

    Returns:
        The agreed labels and the disagreements.
    """
    if not 0.0 <= min_iou < iou <= 1.0:
        raise ValueError(f"need 0 <= min_iou < iou <= 1, got min_iou={min_iou}, iou={iou}")
    ious = iou_xyxy(ov.boxes, expert.boxes)
    same = ov.cats[:, None] == expert.cats[None, :]
    ro, ce = _assign(np.where(same & (ious >= iou), ious, 0.0))
    so, se = ov.scores[ro], expert.scores[ce]
    w = (so + se)[:, None]
    fused = (so[:, None] * ov.boxes[ro] + se[:, None] * expert.boxes[ce]) / np.maximum(w, 1e-12)
    out = Agreement(fused.reshape(-1, 4), np.sqrt(so * se), ov.cats[ro], so, se, ious[ro, ce])
    left_o = np.setdiff1d(np.arange(len(ov)), ro)
    left_e = np.setdiff1d(np.arange(len(expert)), ce)
    if len(fused):  # redundant: left-overs duplicating an agreed label
        dup_o = iou_xyxy(ov.boxes[left_o], fused).max(1, initial=0.0) >= iou
        dup_e = iou_xyxy(expert.boxes[left_e], fused).max(1, initial=0.0) >= iou
        out.redundant = int(dup_o.sum() + dup_e.sum())
        left_o, left_e = left_o[~dup_o], left_e[~dup_e]
    sub = ious[np.ix_(left_o, left_e)]
    po, pe = _assign(np.where(sub > min_iou, sub, 0.0))
    for i, j in zip(po.tolist(), pe.tolist(), strict=True):
        v = float(sub[i, j])
        out.disagreements.append({"reason": "class_conflict" if v >= iou else "low_agreement", "iou": round(v, 4),
                                  "candidates": [_candidate("ov", ov, int(left_o[i])),
                                                 _candidate("expert", expert, int(left_e[j]))]})
    for model, labels, left, paired in (("ov", ov, left_o, po), ("expert", expert, left_e, pe)):
        for k in np.setdiff1d(np.arange(len(left)), paired).tolist():
            out.disagreements.append({"reason": "one_model_only", "iou": 0.0,
                                      "candidates": [_candidate(model, labels, int(left[k]))]})
    return out
