"""``DetectionCriterion``: the training loss of RTVPNet (paper 001 §4.2-4.6) and of the closed-set expert.

``loss = B * (w_box * box + w_dfl * dfl + w_cls * cls + w_nce * nce + w_aux * aux + w_dp * dp)`` with

- ``cls``: BCE-with-logits against the assigner's soft scores, summed over valid vocabulary slots, divided by
  ``max(sum of target scores, 1)``;
- ``box``: ``1 - CIoU`` of positive anchors, each weighted by its target-score sum, divided by the same sum;
- ``dfl``: distribution focal loss of the ltrb targets (stride units), same weighting;
- ``nce``: InfoNCE over the vocabulary on positive cells (needs ``outputs.embeddings`` and ``outputs.text``);
- ``aux``: ``1 - CIoU`` of the auxiliary (refined-prompt) box head under the same assignment and weighting;
- ``dp``: ``sum_i mean((pred_i - target_i)^2)`` over ``outputs.dp_pairs`` (L_dp, targets already detached);
- ``obj`` (only when ``outputs.objectness`` is present: ``model.objectness``): BCE-with-logits of the class-agnostic
  objectness against each anchor's best target score over the prompts, divided by the same sum (``+ w_obj * obj``);
- ``seg`` (only when ``outputs.mask_coef`` is present and the batch carries mask targets: ``model.masks``): the
  instance-mask loss of ``rtvp.loss.segment`` (``+ w_seg * seg``), and its soft Dice term when ``dice > 0``
  (``+ w_dice * dice``; off by default).

Absent optional outputs (closed-set expert, EDP off, eval mode) contribute 0. Scaling by the batch size follows
YOLOv8, so the gains keep their YOLOv8 meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from rtvp.loss.assigner import AssignResult, TaskAlignedAssigner
from rtvp.loss.box import bbox2dist, ciou_loss
from rtvp.loss.contrastive import info_nce, masked_bce_with_logits
from rtvp.loss.dfl import dfl_loss
from rtvp.loss.segment import mask_losses
from rtvp.models.decode import decode_boxes

if TYPE_CHECKING:  # pragma: no cover
    from rtvp.models.outputs import RawOutputs
    from rtvp.structures import Batch

__all__ = ["DetectionCriterion"]

TERMS = ("box", "dfl", "cls", "nce", "aux", "dp")


class DetectionCriterion:
    """Task-aligned detection loss with the contrastive, auxiliary and domain-projection terms.

    Args:
        box: gain of the CIoU box loss.
        dfl: gain of the distribution focal loss.
        cls: gain of the BCE classification loss.
        nce: gain of the InfoNCE vocabulary loss.
        aux: gain of the auxiliary (refined visual prompt) CIoU loss.
        dp: gain of the domain-projection loss L_dp.
        topk: assigner positives per GT.
        alpha: assigner score exponent.
        beta: assigner IoU exponent.
        nce_temperature: InfoNCE temperature ``tau``.
        iou_type: overlap used by the assigner, ``"ciou"`` (YOLOv8) or ``"iou"``.
        obj: gain of the class-agnostic objectness loss (used only by models with ``objectness``).
        seg: gain of the instance-mask loss (used only by models with ``masks``; YOLOv8-seg weighs it like the box).
        dice: gain of the soft Dice mask term (models with ``masks``; 0 = off, as YOLOv8-seg).

    Examples:
        >>> criterion = DetectionCriterion()
        >>> out = criterion(model(batch.images, text), batch)  # doctest: +SKIP
        >>> out["loss"].backward()  # doctest: +SKIP
    """

    def __init__(self, box: float = 7.5, dfl: float = 1.5, cls: float = 0.5, nce: float = 0.5, aux: float = 1.0,
                 dp: float = 1.0, topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
                 nce_temperature: float = 0.07, iou_type: str = "ciou", obj: float = 0.5, seg: float = 7.5,
                 dice: float = 0.0) -> None:
        self.gains = {"box": box, "dfl": dfl, "cls": cls, "nce": nce, "aux": aux, "dp": dp, "obj": obj, "seg": seg,
                      "dice": dice}
        bad = {k: v for k, v in self.gains.items() if not v >= 0}
        if bad:
            raise ValueError(f"DetectionCriterion: loss gains must be >= 0, got {bad}")
        if not nce_temperature > 0:
            raise ValueError(f"DetectionCriterion: nce_temperature must be > 0, got {nce_temperature}")
        self.nce_temperature = nce_temperature
        self.assigner = TaskAlignedAssigner(topk=topk, alpha=alpha, beta=beta, iou_type=iou_type)

    def __call__(self, outputs: RawOutputs, batch: Batch) -> dict[str, torch.Tensor]:
        """Compute the loss of one batch.

        Args:
            outputs: the model's :class:`~rtvp.models.outputs.RawOutputs` (``logits`` ``(B, A, K)``).
            batch: the :class:`~rtvp.structures.Batch` (``vocab_ids`` ``(K,)``, ``gt_*`` ``(B, M, ...)``).

        Returns:
            ``{"loss": differentiable total, "box"|"dfl"|"cls"|"nce"|"aux"|"dp"(|"obj"|"seg"|"dice"): detached
            gain-weighted terms}``;
            ``loss == B * sum(terms)``.
        """
        dev = outputs.logits.device
        valid = batch.vocab_ids.to(dev) >= 0
        self._check(outputs, batch, valid)
        anchors, strides = outputs.anchors.float(), outputs.strides.float()
        box_dist = outputs.box_dist.float()
        pred_boxes = decode_boxes(box_dist, anchors, strides)
        res = self.assigner(outputs.logits.detach().float().sigmoid(), pred_boxes.detach(), anchors,
                            batch.gt_boxes.to(dev), batch.gt_labels.to(dev), batch.gt_mask.to(dev))
        tss = res.target_scores.sum().clamp(min=1.0)
        raw = {"cls": masked_bce_with_logits(outputs.logits, res.target_scores, valid) / tss}
        raw.update(self._box_terms(box_dist, pred_boxes, outputs, res, tss))
        raw["nce"] = self._nce(outputs, res, valid)
        raw["dp"] = self._dp(outputs)
        keys = TERMS
        if outputs.objectness is not None:  # class-agnostic: the best target score of each anchor over the prompts
            target = res.target_scores.amax(-1)
            raw["obj"] = F.binary_cross_entropy_with_logits(outputs.objectness.float(), target,
                                                            reduction="sum") / tss
            keys = (*keys, "obj")
        if outputs.mask_coef is not None and batch.gt_segs is not None:
            use_dice = self.gains["dice"] > 0
            raw["seg"], raw["dice"] = mask_losses(outputs.mask_coef, outputs.protos, res, batch.gt_segs,
                                                  batch.gt_seg_valid, dice=use_dice)
            keys = (*keys, "seg", "dice") if use_dice else (*keys, "seg")
        terms = {k: self.gains[k] * raw[k] for k in keys}
        total = torch.stack(list(terms.values())).sum() * outputs.logits.shape[0]
        return {"loss": total, **{k: v.detach() for k, v in terms.items()}}

    def assign(self, outputs: RawOutputs, batch: Batch) -> AssignResult:
        """Run only the assigner on ``outputs`` (for diagnostics and visualisation)."""
        dev = outputs.logits.device
        pred_boxes = decode_boxes(outputs.box_dist.float(), outputs.anchors.float(), outputs.strides.float())
        return self.assigner(outputs.logits.detach().float().sigmoid(), pred_boxes.detach(), outputs.anchors,
                             batch.gt_boxes.to(dev), batch.gt_labels.to(dev), batch.gt_mask.to(dev))

    def _box_terms(self, box_dist: torch.Tensor, pred_boxes: torch.Tensor, outputs: RawOutputs, res: AssignResult,
                   tss: torch.Tensor) -> dict[str, torch.Tensor]:
        """CIoU, DFL and auxiliary CIoU on the positive anchors, weighted by their target-score sums."""
        bi, ai = res.fg_mask.nonzero(as_tuple=True)
        weight = res.target_scores.sum(-1)[bi, ai]  # (P,)
        target = res.target_boxes[bi, ai]  # (P, 4)
        anchors, strides = outputs.anchors.float()[ai], outputs.strides.float()[ai, None]
        box = (ciou_loss(pred_boxes[bi, ai], target) * weight).sum() / tss
        tdist = bbox2dist(anchors / strides, target / strides, outputs.reg_max - 1 - 0.01)
        dfl = (dfl_loss(box_dist[bi, ai], tdist, outputs.reg_max) * weight).sum() / tss
        if outputs.aux_box_dist is None:
            aux = box.new_zeros(())
        else:
            aux_boxes = decode_boxes(outputs.aux_box_dist.float(), outputs.anchors.float(), outputs.strides.float())
            aux = (ciou_loss(aux_boxes[bi, ai], target) * weight).sum() / tss
        return {"box": box, "dfl": dfl, "aux": aux}

    def _nce(self, outputs: RawOutputs, res: AssignResult, valid: torch.Tensor) -> torch.Tensor:
        """InfoNCE over the vocabulary on positive cells, 0 without region/text embeddings."""
        if outputs.embeddings is None or outputs.text is None:
            return outputs.logits.new_zeros((), dtype=torch.float32)
        return info_nce(outputs.embeddings, outputs.text, res.fg_mask, res.target_labels, valid,
                        self.nce_temperature)

    @staticmethod
    def _dp(outputs: RawOutputs) -> torch.Tensor:
        """L_dp = sum over scales of the mean squared error to the (stop-gradient) expert target."""
        zero = outputs.logits.new_zeros((), dtype=torch.float32)
        return sum((F.mse_loss(p.float(), t.detach().float()) for p, t in outputs.dp_pairs), zero)

    @staticmethod
    def _check(outputs: RawOutputs, batch: Batch, valid: torch.Tensor) -> None:
        """Shape and label consistency between the outputs and the batch; raises ``ValueError`` naming the field."""
        b, a, k = outputs.logits.shape
        if outputs.box_dist.shape != (b, a, 4 * outputs.reg_max):
            raise ValueError(f"RawOutputs.box_dist has shape {tuple(outputs.box_dist.shape)}, expected "
                             f"{(b, a, 4 * outputs.reg_max)} (B, A, 4 * reg_max)")
        if outputs.anchors.shape != (a, 2) or outputs.strides.shape != (a,):
            raise ValueError(f"RawOutputs.anchors/strides have shapes {tuple(outputs.anchors.shape)}/"
                             f"{tuple(outputs.strides.shape)}, expected ({a}, 2)/({a},)")
        if valid.shape != (k,):
            raise ValueError(f"Batch.vocab_ids has {valid.numel()} slots but the logits have K={k}; the model must "
                             f"be run with the batch vocabulary")
        if batch.gt_boxes.shape[0] != b:
            raise ValueError(f"Batch has {batch.gt_boxes.shape[0]} images but the outputs have B={b}")
        if batch.gt_boxes.shape[:2] != batch.gt_labels.shape or batch.gt_labels.shape != batch.gt_mask.shape:
            raise ValueError(f"Batch gt_boxes/gt_labels/gt_mask shapes disagree: {tuple(batch.gt_boxes.shape)}, "
                             f"{tuple(batch.gt_labels.shape)}, {tuple(batch.gt_mask.shape)}")
        labels = batch.gt_labels.to(valid.device)[batch.gt_mask.to(valid.device).bool()]
        if labels.numel() and (labels.min() < 0 or labels.max() >= k or not bool(valid[labels].all())):
            raise ValueError(f"Batch.gt_labels must index real vocabulary slots 0..{k - 1} (vocab_ids >= 0); got "
                             f"labels {sorted(set(labels.tolist()))} with vocab_ids {batch.vocab_ids.tolist()}")
