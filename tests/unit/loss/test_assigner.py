from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_iou

from rtvp.loss import TaskAlignedAssigner

# one 4x4 level of stride 16 on a 64 px image: anchor i = row * 4 + col at ((col + 0.5) * 16, (row + 0.5) * 16)
ANCHORS = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="xy"), -1).reshape(-1, 2) * 16 + 8


def _tiny_boxes() -> torch.Tensor:
    """A 2x2 px predicted box on every anchor (almost no overlap with anything)."""
    return torch.cat((ANCHORS - 1, ANCHORS + 1), -1)


def _two_gt_case():
    pred_boxes = _tiny_boxes()
    pred_boxes[0] = torch.tensor([0.0, 0, 32, 32])  # IoU 1 with GT1
    pred_boxes[1] = torch.tensor([0.0, 0, 32, 16])  # IoU 0.5 with GT1
    pred_boxes[2] = torch.tensor([32.0, 32, 64, 64])  # IoU 1 with GT2, but its centre (40, 8) is outside GT2
    pred_boxes[[10, 11, 14, 15]] = torch.tensor([36.0, 36, 60, 60])  # IoU 0.5625 with GT2
    scores = torch.full((16, 3), 0.5)
    scores[15, 1], scores[14, 1], scores[2, 1] = 0.9, 0.6, 0.99
    gt_boxes = torch.tensor([[[0.0, 0, 32, 32], [32, 32, 64, 64], [0, 0, 64, 64]],
                             [[0.0, 0, 64, 64], [0, 0, 32, 32], [0, 0, 0, 0]]])
    gt_labels = torch.tensor([[0, 1, 2], [2, 0, -1]])
    gt_mask = torch.tensor([[True, True, False], [False, False, False]])  # image 1 has only padding
    return scores.expand(2, -1, -1), pred_boxes.expand(2, -1, -1), gt_boxes, gt_labels, gt_mask


def test_hand_built_two_gts_positives_labels_and_scores():
    scores, boxes, gtb, gtl, gtm = _two_gt_case()
    res = TaskAlignedAssigner(topk=2, alpha=0.5, beta=6.0, iou_type="iou")(scores, boxes, ANCHORS, gtb, gtl, gtm)
    assert res.fg_mask[0].nonzero().flatten().tolist() == [0, 1, 14, 15]
    assert not res.fg_mask[1].any()
    assert res.target_labels[0, [0, 1, 14, 15]].tolist() == [0, 0, 1, 1]
    assert (res.target_labels[~res.fg_mask] == -1).all() and (res.matched_gt[~res.fg_mask] == -1).all()
    assert res.matched_gt[0, [0, 1, 14, 15]].tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(res.target_boxes[0, 1], gtb[0, 0])
    torch.testing.assert_close(res.target_boxes[0, 14], gtb[0, 1])
    assert (res.target_boxes[~res.fg_mask] == 0).all()
    # t = s^0.5 IoU^6, normalised per GT so that its best positive gets the GT's best IoU
    expect = torch.zeros(16, 3)
    expect[0, 0], expect[1, 0] = 1.0, 0.5**6
    expect[15, 1], expect[14, 1] = 0.5625, 0.5625 * math.sqrt(0.6 / 0.9)
    torch.testing.assert_close(res.target_scores[0], expect, rtol=1e-4, atol=1e-6)
    assert (res.target_scores[1] == 0).all()
    assert res.num_fg == 4


def test_topk_larger_than_candidates_keeps_all_inside_anchors():
    scores, boxes, gtb, gtl, gtm = _two_gt_case()
    res = TaskAlignedAssigner(topk=50, iou_type="iou")(scores, boxes, ANCHORS, gtb, gtl, gtm)
    assert res.fg_mask[0].nonzero().flatten().tolist() == [0, 1, 4, 5, 10, 11, 14, 15]
    assert res.fg_mask[0, 2].item() is False  # best box of GT2 but centre outside it


@pytest.mark.parametrize("swap", [False, True])
def test_anchor_claimed_by_two_gts_goes_to_higher_iou(swap: bool):
    gt = torch.tensor([[0.0, 0, 48, 48], [16, 16, 64, 64]])
    gt = gt.flip(0) if swap else gt
    boxes = _tiny_boxes()
    boxes[5] = torch.tensor([0.0, 0, 40, 40])  # inside both GTs; IoU 0.69 with A, 0.17 with B
    boxes[10] = torch.tensor([20.0, 20, 64, 64])  # inside both GTs; IoU 0.23 with A, 0.84 with B
    boxes[6] = torch.tensor([30.0, 10, 50, 45])
    boxes[9] = torch.tensor([12.0, 30, 44, 60])
    scores = torch.full((1, 16, 2), 0.5)
    labels = torch.tensor([[0, 1]]).flip(1) if swap else torch.tensor([[0, 1]])
    res = TaskAlignedAssigner(topk=10, iou_type="iou")(scores, boxes[None], ANCHORS, gt[None], labels,
                                                       torch.ones(1, 2, dtype=torch.bool))
    a_idx = 1 if swap else 0
    assert res.matched_gt[0, 5].item() == a_idx and res.target_labels[0, 5].item() == 0
    assert res.matched_gt[0, 10].item() == 1 - a_idx and res.target_labels[0, 10].item() == 1
    ious = box_iou(boxes, gt)  # (16, 2)
    for i in (5, 6, 9, 10):  # every shared anchor goes to its highest-IoU GT, exactly once
        assert res.matched_gt[0, i].item() == int(ious[i].argmax())
    assert (res.target_scores[0].gt(0).sum(-1) <= 1).all()


def test_empty_gt_gives_no_positives():
    scores, boxes = torch.rand(2, 16, 3), _tiny_boxes().expand(2, -1, -1)
    for m in (0, 3):
        res = TaskAlignedAssigner()(scores, boxes, ANCHORS, torch.zeros(2, m, 4), torch.full((2, m), -1),
                                    torch.zeros(2, m, dtype=torch.bool))
        assert not res.fg_mask.any() and res.num_fg == 0
        assert res.target_scores.shape == (2, 16, 3) and (res.target_scores == 0).all()
        assert res.target_boxes.shape == (2, 16, 4) and (res.target_labels == -1).all()


def test_one_box_positives_are_inside_it():
    gt = torch.tensor([[[4.0, 4, 60, 44]]])
    scores = torch.rand(1, 16, 2, generator=torch.Generator().manual_seed(0))
    boxes = _tiny_boxes()[None] * 1.0
    res = TaskAlignedAssigner(topk=5)(scores, boxes, ANCHORS, gt, torch.tensor([[1]]), torch.tensor([[True]]))
    assert res.num_fg == 5
    pos = ANCHORS[res.fg_mask[0]]
    assert ((pos > gt[0, 0, :2]) & (pos < gt[0, 0, 2:])).all()
    assert (res.target_labels[res.fg_mask] == 1).all()
    assert (res.target_scores[..., 0] == 0).all()


def test_zero_alignment_still_assigns_candidates():
    # all scores 0 -> every t = 0; positives must still come from anchors inside the GT (not arbitrary ties)
    gt = torch.tensor([[[16.0, 16, 48, 48]]])
    res = TaskAlignedAssigner(topk=3)(torch.zeros(1, 16, 1), _tiny_boxes()[None], ANCHORS, gt,
                                      torch.tensor([[0]]), torch.tensor([[True]]))
    assert res.num_fg == 3
    assert set(res.fg_mask[0].nonzero().flatten().tolist()) <= {5, 6, 9, 10}
    assert (res.target_scores == 0).all()


def test_gt_without_anchor_centre_inside_gets_nothing():
    res = TaskAlignedAssigner()(torch.rand(1, 16, 1), _tiny_boxes()[None], ANCHORS, torch.tensor([[[0.0, 0, 4, 4]]]),
                                torch.tensor([[0]]), torch.tensor([[True]]))
    assert res.num_fg == 0


def test_ciou_ranks_centred_box_above_offset_box_of_equal_iou():
    gt = torch.tensor([[[0.0, 0, 32, 32]]])
    boxes = _tiny_boxes()
    boxes[0] = torch.tensor([0.0, 0, 32, 16])  # IoU 0.5, centre 8 px off
    boxes[1] = torch.tensor([0.0, 8, 32, 24])  # IoU 0.5, centred
    args = (torch.full((1, 16, 1), 0.5), boxes[None], ANCHORS, gt, torch.tensor([[0]]), torch.tensor([[True]]))
    res = TaskAlignedAssigner(topk=1, iou_type="ciou")(*args)
    assert res.fg_mask[0].nonzero().flatten().tolist() == [1]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="topk"):
        TaskAlignedAssigner(topk=0)
    with pytest.raises(ValueError, match="iou_type"):
        TaskAlignedAssigner(iou_type="giou")
