"""The instance-mask loss: a hand-computed case, box-only instances, the packed bmm, the criterion's ``seg`` term."""

from __future__ import annotations

import math

import pytest
import torch

from rtvp.loss import DetectionCriterion
from rtvp.loss.assigner import AssignResult
from rtvp.loss.segment import mask_loss, mask_losses, positive_mask_logits
from rtvp.models import ExpertDetector
from rtvp.structures import Batch


def _assign(fg: list[list[bool]], matched: list[list[int]], boxes: torch.Tensor) -> AssignResult:
    fg_t = torch.tensor(fg)
    return AssignResult(fg_mask=fg_t, target_boxes=boxes, target_labels=torch.where(fg_t, 0, -1),
                        target_scores=torch.zeros(*fg_t.shape, 1), matched_gt=torch.tensor(matched))


def test_hand_computed_loss():
    # one image, 2 anchors, 1 prototype on a 4 x 4 grid (a 16 px input); anchor 0 is positive for GT 0
    protos = torch.zeros(1, 1, 4, 4)
    protos[0, 0, 0, 0] = 2.0
    coef = torch.tensor([[[1.0], [5.0]]])
    boxes = torch.zeros(1, 2, 4)
    boxes[0, 0] = torch.tensor([0.0, 0.0, 8.0, 8.0])  # cells (0..1, 0..1) on the stride-4 grid
    target = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    target[0, 0, 0, :2] = 1
    res = _assign([[True, False]], [[0, -1]], boxes)
    got = mask_loss(coef, protos, res, target, torch.tensor([[True]]))
    # cells in the box: (0,0) logit 2 target 1; (0,1) logit 0 target 1; (1,0), (1,1) logit 0 target 0
    expected = (math.log1p(math.exp(-2.0)) + 3 * math.log(2.0)) / 4
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_box_only_instances_add_nothing_but_keep_the_graph():
    coef = torch.randn(1, 2, 3, requires_grad=True)
    protos = torch.randn(1, 3, 4, 4, requires_grad=True)
    boxes = torch.zeros(1, 2, 4)
    boxes[0, 0] = torch.tensor([0.0, 0.0, 16.0, 16.0])
    res = _assign([[True, False]], [[0, -1]], boxes)
    loss = mask_loss(coef, protos, res, torch.ones(1, 1, 4, 4, dtype=torch.uint8), torch.tensor([[False]]))
    assert loss.item() == 0.0
    loss.backward()
    assert coef.grad is not None and coef.grad.abs().sum() == 0


def test_packed_logits_equal_a_per_image_loop():
    g = torch.Generator().manual_seed(0)
    coef, protos = torch.randn(3, 10, 4, generator=g), torch.randn(3, 4, 5, 6, generator=g)
    fg = torch.zeros(3, 10, dtype=torch.bool)
    fg[0, [1, 4, 7]] = True
    fg[2, [0, 9]] = True  # image 1 has no positive
    bi, ai = fg.nonzero(as_tuple=True)
    got = positive_mask_logits(coef, protos, bi, ai)
    pairs = zip(bi.tolist(), ai.tolist(), strict=True)
    ref = torch.stack([(coef[b, a] @ protos[b].flatten(1)).view(5, 6) for b, a in pairs])
    torch.testing.assert_close(got, ref)


def test_grid_mismatch_is_named():
    res = _assign([[True]], [[0]], torch.zeros(1, 1, 4))
    with pytest.raises(ValueError, match="stride-4 grid"):
        mask_loss(torch.zeros(1, 1, 2), torch.zeros(1, 2, 4, 4), res, torch.zeros(1, 1, 8, 8), torch.ones(1, 1).bool())


def test_criterion_reports_the_seg_term_and_trains_the_branch():
    torch.manual_seed(0)
    model = ExpertDetector("tiny", nc=2, masks=True)
    segs = torch.zeros(2, 1, 16, 16, dtype=torch.uint8)
    segs[:, 0, 4:10, 4:12] = 1
    batch = Batch(images=torch.rand(2, 3, 64, 64), gt_boxes=torch.tensor([[[16.0, 16, 48, 40]]] * 2),
                  gt_labels=torch.tensor([[0], [1]]), gt_mask=torch.ones(2, 1, dtype=torch.bool),
                  vocab_ids=torch.tensor([0, 1]), image_ids=[1, 2], orig_sizes=torch.tensor([[64, 64]] * 2),
                  scales=torch.ones(2), pads=torch.zeros(2, 2), gt_segs=segs,
                  gt_seg_valid=torch.ones(2, 1, dtype=torch.bool))
    out = DetectionCriterion()(model(batch.images), batch)
    assert out["seg"].item() > 0
    out["loss"].backward()
    assert model.seg.proto[-1].weight.grad.abs().sum() > 0
    no_masks = Batch(**{**batch.__dict__, "gt_segs": None, "gt_seg_valid": None})
    assert "seg" not in DetectionCriterion()(model(batch.images), no_masks)


def test_dice_term_hand_computed_and_off_by_default():
    # the case of test_hand_computed_loss: box cells (0,0) p=sigmoid(2) t=1, (0,1) p=.5 t=1, (1,0), (1,1) p=.5 t=0
    protos = torch.zeros(1, 1, 4, 4)
    protos[0, 0, 0, 0] = 2.0
    boxes = torch.zeros(1, 2, 4)
    boxes[0, 0] = torch.tensor([0.0, 0.0, 8.0, 8.0])
    target = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    target[0, 0, 0, :2] = 1
    res = _assign([[True, False]], [[0, -1]], boxes)
    coef, valid = torch.tensor([[[1.0], [5.0]]]), torch.tensor([[True]])
    seg, dice = mask_losses(coef, protos, res, target, valid, dice=True)
    p0 = 1 / (1 + math.exp(-2.0))
    expected = 1 - (2 * (p0 + 0.5) + 1) / ((p0 + 3 * 0.5) + 2 + 1)
    assert dice.item() == pytest.approx(expected, rel=1e-6)
    assert seg.item() == pytest.approx(mask_loss(coef, protos, res, target, valid).item())
    assert mask_losses(coef, protos, res, target, valid)[1] is None


def test_criterion_adds_the_dice_term_only_when_its_gain_is_set():
    torch.manual_seed(0)
    model = ExpertDetector("tiny", nc=1, masks=True)
    segs = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    segs[0, 0, 6, 4:12] = 1  # a one-cell-thin line
    batch = Batch(images=torch.rand(1, 3, 64, 64), gt_boxes=torch.tensor([[[16.0, 20, 48, 30]]]),
                  gt_labels=torch.tensor([[0]]), gt_mask=torch.ones(1, 1, dtype=torch.bool),
                  vocab_ids=torch.tensor([0]), image_ids=[1], orig_sizes=torch.tensor([[64, 64]]),
                  scales=torch.ones(1), pads=torch.zeros(1, 2), gt_segs=segs,
                  gt_seg_valid=torch.ones(1, 1, dtype=torch.bool))
    out = model(batch.images)
    assert "dice" not in DetectionCriterion()(out, batch)
    with_dice = DetectionCriterion(dice=2.0)(out, batch)
    assert 0 < with_dice["dice"].item() <= 2.0
    plain = DetectionCriterion()(out, batch)
    total = with_dice["loss"] - plain["loss"]
    assert total.item() == pytest.approx(with_dice["dice"].item(), rel=1e-4)
