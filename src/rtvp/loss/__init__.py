"""Losses and label assignment: pure functions of (``RawOutputs``, ``Batch``); nothing here holds parameters."""

from rtvp.loss.assigner import AssignResult, TaskAlignedAssigner
from rtvp.loss.box import bbox2dist, box_iou_elementwise, ciou, ciou_loss, dist2bbox
from rtvp.loss.contrastive import info_nce, masked_bce_with_logits
from rtvp.loss.criterion import DetectionCriterion
from rtvp.loss.dfl import dfl_loss, dfl_targets

__all__ = [
    "AssignResult",
    "DetectionCriterion",
    "TaskAlignedAssigner",
    "bbox2dist",
    "box_iou_elementwise",
    "ciou",
    "ciou_loss",
    "dfl_loss",
    "dfl_targets",
    "dist2bbox",
    "info_nce",
    "masked_bce_with_logits",
]
