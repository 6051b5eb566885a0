"""Task-aligned label assignment (Feng et al., TOOD, ICCV 2021), vectorised over batch, GT boxes and anchors.

For each ground-truth box g and anchor a:

1. candidates: anchors whose centre lies strictly inside g (padded GTs have none);
2. alignment ``t = s^alpha * IoU^beta`` with ``s`` the predicted probability of g's class at a and ``IoU`` the
   overlap of a's predicted box with g (CIoU clamped at 0 by default, as in YOLOv8; plain IoU optional);
3. the ``topk`` candidates with the largest ``t`` become positives of g (candidates rank above non-candidates, so
   a GT with any candidate gets positives even while every ``t`` is still 0);
4. an anchor that is a positive of several GTs keeps only the one its predicted box overlaps most;
5. target score of a positive = ``t * max_IoU(g) / max_t(g)`` (per-GT normalisation) on the GT's class, 0 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rtvp.loss.box import box_iou_elementwise, ciou

__all__ = ["AssignResult", "TaskAlignedAssigner"]


@dataclass
class AssignResult:
    """Per-anchor targets of one batch.

    Attributes:
        fg_mask: ``(B, A)`` bool, True for positive anchors.
        target_boxes: ``(B, A, 4)`` xyxy pixels of the matched GT (zeros on background).
        target_labels: ``(B, A)`` long vocabulary index of the matched GT (``-1`` on background).
        target_scores: ``(B, A, K)`` soft classification targets (normalised alignment on the GT class, else 0).
        matched_gt: ``(B, A)`` long index into the GT dimension ``M`` (``-1`` on background).
    """

    fg_mask: torch.Tensor
    target_boxes: torch.Tensor
    target_labels: torch.Tensor
    target_scores: torch.Tensor
    matched_gt: torch.Tensor

    @property
    def num_fg(self) -> int:
        """Number of positive anchors in the batch."""
        return int(self.fg_mask.sum())


class TaskAlignedAssigner:
    """Task-aligned assigner; stateless, call it under ``no_grad`` semantics (inputs are detached inside).

    Args:
        topk: positives kept per GT.
        alpha: exponent of the classification score in the alignment metric.
        beta: exponent of the IoU in the alignment metric.
        iou_type: ``"ciou"`` (YOLOv8 default, clamped at 0) or ``"iou"``.
        eps: numerical guard.

    Examples:
        >>> assigner = TaskAlignedAssigner(topk=10, alpha=0.5, beta=6.0)
        >>> res = assigner(pred_scores, pred_boxes, anchors, gt_boxes, gt_labels, gt_mask)  # doctest: +SKIP
    """

    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, iou_type: str = "ciou",
                 eps: float = 1e-9) -> None:
        if topk < 1:
            raise ValueError(f"TaskAlignedAssigner: topk must be >= 1, got {topk}")
        if iou_type not in ("ciou", "iou"):
            raise ValueError(f"TaskAlignedAssigner: iou_type must be 'ciou' or 'iou', got {iou_type!r}")
        self.topk, self.alpha, self.beta, self.iou_type, self.eps = topk, alpha, beta, iou_type, eps

    @torch.no_grad()
    def __call__(self, pred_scores: torch.Tensor, pred_boxes: torch.Tensor, anchors: torch.Tensor,
                 gt_boxes: torch.Tensor, gt_labels: torch.Tensor, gt_mask: torch.Tensor) -> AssignResult:
        """Assign GT boxes to anchors.

        Args:
            pred_scores: ``(B, A, K)`` predicted probabilities (sigmoid of the logits).
            pred_boxes: ``(B, A, 4)`` decoded predicted boxes, xyxy pixels.
            anchors: ``(A, 2)`` anchor centres in pixels.
            gt_boxes: ``(B, M, 4)`` xyxy pixels (any value where padded).
            gt_labels: ``(B, M)`` vocabulary index (any value where padded).
            gt_mask: ``(B, M)`` bool, True for real boxes.

        Returns:
            The :class:`AssignResult`.
        """
        b, a, k = pred_scores.shape
        m = gt_boxes.shape[1]
        if m == 0 or a == 0:
            return self._empty(b, a, k, pred_scores)
        pred_scores, pred_boxes = pred_scores.detach().float(), pred_boxes.detach().float()
        gt_boxes, gt_mask = gt_boxes.float(), gt_mask.bool()
        labels = gt_labels.long().clamp(0, k - 1)
        cand = self._in_gt(anchors.float(), gt_boxes) & gt_mask[..., None]  # (B, M, A)
        overlaps, metric = self._metric(pred_scores, pred_boxes, gt_boxes, labels, cand)
        mask_pos = self._topk(metric, cand) & cand
        mask_pos = self._resolve_multiple(mask_pos, overlaps)
        return self._targets(mask_pos, metric, overlaps, gt_boxes, labels, k)

    @staticmethod
    def _in_gt(anchors: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
        """``(B, M, A)`` bool: anchor centre strictly inside the GT box."""
        x, y = anchors[:, 0], anchors[:, 1]
        x1, y1, x2, y2 = (gt_boxes[..., i, None] for i in range(4))
        return (x > x1) & (y > y1) & (x < x2) & (y < y2)

    def _metric(self, pred_scores: torch.Tensor, pred_boxes: torch.Tensor, gt_boxes: torch.Tensor,
                labels: torch.Tensor, cand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Overlaps and alignment metric ``(B, M, A)``, evaluated on the candidate pairs only (0 elsewhere)."""
        bi, mi, ai = cand.nonzero(as_tuple=True)
        fn = ciou if self.iou_type == "ciou" else box_iou_elementwise
        ov = fn(pred_boxes[bi, ai], gt_boxes[bi, mi]).clamp(min=0)
        t = pred_scores[bi, ai, labels[bi, mi]].pow(self.alpha) * ov.pow(self.beta)
        overlaps, metric = torch.zeros_like(cand, dtype=ov.dtype), torch.zeros_like(cand, dtype=ov.dtype)
        overlaps[bi, mi, ai] = ov
        metric[bi, mi, ai] = t
        return overlaps, metric

    def _topk(self, metric: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """``(B, M, A)`` bool: the ``topk`` anchors of each GT by metric, candidates ranked above the rest."""
        k = min(self.topk, metric.shape[-1])
        rank = torch.where(cand, metric, torch.full_like(metric, -1.0))
        idx = rank.topk(k, dim=-1).indices  # (B, M, k)
        out = torch.zeros_like(cand)
        return out.scatter_(-1, idx, True)

    @staticmethod
    def _resolve_multiple(mask_pos: torch.Tensor, overlaps: torch.Tensor) -> torch.Tensor:
        """Keep, for an anchor positive for several GTs, only the GT with the highest overlap among those."""
        multi = mask_pos.sum(1, keepdim=True) > 1  # (B, 1, A)
        if not bool(multi.any()):
            return mask_pos
        best = torch.where(mask_pos, overlaps, torch.full_like(overlaps, -1.0)).argmax(1)  # (B, A)
        best_mask = F.one_hot(best, mask_pos.shape[1]).transpose(1, 2).bool()  # (B, M, A)
        return torch.where(multi, best_mask & mask_pos, mask_pos)

    def _targets(self, mask_pos: torch.Tensor, metric: torch.Tensor, overlaps: torch.Tensor, gt_boxes: torch.Tensor,
                 labels: torch.Tensor, k: int) -> AssignResult:
        """Gather per-anchor boxes, labels and normalised soft scores from the final positive mask."""
        fg = mask_pos.any(1)  # (B, A)
        gt_index = torch.arange(mask_pos.shape[1], device=mask_pos.device)[:, None]
        matched = (mask_pos * gt_index).sum(1)  # (B, A); at most one GT per anchor is left
        boxes = gt_boxes.gather(1, matched[..., None].expand(-1, -1, 4))
        tlabels = labels.gather(1, matched)
        metric = metric * mask_pos
        max_metric = metric.amax(-1, keepdim=True)  # (B, M, 1)
        max_iou = (overlaps * mask_pos).amax(-1, keepdim=True)
        norm = (metric * max_iou / (max_metric + self.eps)).amax(1)  # (B, A)
        scores = F.one_hot(tlabels, k).to(metric.dtype) * (norm * fg)[..., None]
        return AssignResult(
            fg_mask=fg,
            target_boxes=boxes * fg[..., None],
            target_labels=torch.where(fg, tlabels, torch.full_like(tlabels, -1)),
            target_scores=scores,
            matched_gt=torch.where(fg, matched, torch.full_like(matched, -1)),
        )

    @staticmethod
    def _empty(b: int, a: int, k: int, like: torch.Tensor) -> AssignResult:
        """All-background result (no GT in the batch)."""
        dev = like.device
        return AssignResult(
            fg_mask=torch.zeros(b, a, dtype=torch.bool, device=dev),
            target_boxes=torch.zeros(b, a, 4, device=dev),
            target_labels=torch.full((b, a), -1, dtype=torch.long, device=dev),
            target_scores=torch.zeros(b, a, k, device=dev),
            matched_gt=torch.full((b, a), -1, dtype=torch.long, device=dev),
        )
