"""Instance-mask loss of the mask branch (``model.masks``), YOLOv8-seg style, vectorised over the batch.

For every positive anchor ``a`` of image ``b`` whose matched ground truth ``g`` has a real mask
(``Batch.gt_seg_valid``), with ``m_a = coef_a . protos_b`` the ``(H/4, W/4)`` mask logits:

``l_a = sum_{cells in box(g)} BCE(m_a, mask_g) / max(cells in box(g), 1)`` and ``seg = sum_a l_a / max(n, 1)``

over the ``n`` such anchors. Box-only instances contribute nothing (no mask is invented from their box), and the
term is 0 when the batch has no mask at all.

``dice`` (optional, ``loss.dice``): the soft Dice loss over the same cells,
``1 - (2 sum p t + 1) / (sum p + sum t + 1)`` with ``p = sigmoid(m_a)``, averaged over the same anchors. The per-cell
BCE is dominated by background cells when an instance fills a few percent of its box (a crack along a diagonal), so
the thin foreground ends below 0.5; Dice weighs foreground and background by their totals instead, as SOLO and
CondInst use it for the same reason.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rtvp.loss.assigner import AssignResult
from rtvp.models.segment import PROTO_STRIDE, box_cells

__all__ = ["mask_loss", "mask_losses"]


def positive_mask_logits(coef: torch.Tensor, protos: torch.Tensor, bi: torch.Tensor, ai: torch.Tensor) -> torch.Tensor:
    """Mask logits of the positive anchors ``(bi, ai)`` without materialising every anchor's mask.

    The positives of each image are packed into ``(B, P_max, nm)`` (``P_max`` the most positives in one image) and
    multiplied with that image's prototypes in one ``bmm``.

    Args:
        coef: ``(B, A, nm)`` coefficients.
        protos: ``(B, nm, Hp, Wp)`` prototypes.
        bi: ``(P,)`` image index of each positive (sorted, as ``nonzero`` returns them).
        ai: ``(P,)`` anchor index of each positive.

    Returns:
        ``(P, Hp, Wp)`` logits (fp32).
    """
    b, _, nm = coef.shape
    counts = torch.bincount(bi, minlength=b)
    slot = torch.arange(len(bi), device=bi.device) - (torch.cumsum(counts, 0) - counts)[bi]  # rank within image
    packed = coef.new_zeros((b, int(counts.max()), nm), dtype=torch.float32)
    packed[bi, slot] = coef[bi, ai].float()
    logits = torch.bmm(packed, protos.float().flatten(2))  # (B, P_max, Hp * Wp)
    return logits[bi, slot].view(len(bi), *protos.shape[2:])


def mask_loss(coef: torch.Tensor, protos: torch.Tensor, res: AssignResult, gt_segs: torch.Tensor,
              gt_seg_valid: torch.Tensor) -> torch.Tensor:
    """The ``seg`` term (see the module docstring); :func:`mask_losses` without the Dice term."""
    return mask_losses(coef, protos, res, gt_segs, gt_seg_valid)[0]


def mask_losses(coef: torch.Tensor, protos: torch.Tensor, res: AssignResult, gt_segs: torch.Tensor,
                gt_seg_valid: torch.Tensor, dice: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The ``seg`` term and, with ``dice``, the ``dice`` term (see the module docstring).

    Args:
        coef: ``(B, A, nm)`` mask coefficients.
        protos: ``(B, nm, Hp, Wp)`` prototypes.
        res: the assignment of the batch (positives, matched GT index, target boxes in input pixels).
        gt_segs: ``(B, M, Hp, Wp)`` uint8 mask targets on the prototype grid.
        gt_seg_valid: ``(B, M)`` bool, True where the instance has a real mask.
        dice: also compute the Dice term (else it is None).

    Returns:
        ``(seg, dice)``: scalar fp32 losses (``dice`` None unless asked for).

    Raises:
        ValueError: the targets are not on the prototype grid.
    """
    if gt_segs.shape[-2:] != protos.shape[-2:]:
        raise ValueError(f"mask targets are {tuple(gt_segs.shape[-2:])} but the prototypes "
                         f"{tuple(protos.shape[-2:])}: both must be on the stride-4 grid of the input")
    bi, ai = res.fg_mask.nonzero(as_tuple=True)
    gi = res.matched_gt[bi, ai]
    keep = gt_seg_valid.to(gi.device)[bi, gi]
    if not bool(keep.any()):  # still part of the graph, so every parameter gets a (zero) gradient, as DDP wants
        zero = 0.0 * (coef.sum() + protos.sum()).float()
        return zero, zero if dice else None
    bi, ai, gi = bi[keep], ai[keep], gi[keep]
    logits = positive_mask_logits(coef, protos, bi, ai)
    target = gt_segs.to(logits.device)[bi, gi].float()
    inside = box_cells(res.target_boxes[bi, ai].float() / PROTO_STRIDE, *logits.shape[-2:]).float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * inside
    seg = (bce.sum((1, 2)) / inside.sum((1, 2)).clamp(min=1.0)).sum() / len(bi)
    if not dice:
        return seg, None
    prob, target = logits.sigmoid() * inside, target * inside
    overlap = 2.0 * (prob * target).sum((1, 2)) + 1.0
    return seg, (1.0 - overlap / (prob.sum((1, 2)) + target.sum((1, 2)) + 1.0)).mean()
