"""DFL decoding on constructed distributions and post-processing (threshold, class-aware NMS, masks, max_det)."""

from __future__ import annotations

import torch
from rtvp_helpers import single_thread  # noqa: F401 (autouse fixture)

from rtvp.models.decode import decode_boxes, dfl_distances, make_anchors, postprocess
from rtvp.models.outputs import RawOutputs


def _one_hot_dist(bins: list[int], reg_max: int = 16) -> torch.Tensor:
    d = torch.full((4, reg_max), -50.0)
    for side, b in enumerate(bins):
        d[side, b] = 50.0
    return d.flatten()


def test_make_anchors_centres_and_order():
    anchors, strides = make_anchors([(2, 3), (1, 1)], [8, 16])
    assert anchors.shape == (7, 2) and strides.tolist() == [8.0] * 6 + [16.0]
    torch.testing.assert_close(anchors[:4], torch.tensor([[4.0, 4.0], [12.0, 4.0], [20.0, 4.0], [4.0, 12.0]]))
    torch.testing.assert_close(anchors[-1], torch.tensor([8.0, 8.0]))


def test_one_hot_dfl_decodes_to_known_box():
    box = _one_hot_dist([2, 3, 4, 5]).view(1, 1, 64)
    out = decode_boxes(box, torch.tensor([[100.0, 60.0]]), torch.tensor([8.0]))
    torch.testing.assert_close(out, torch.tensor([[[100 - 16.0, 60 - 24.0, 100 + 32.0, 60 + 40.0]]]))


def test_two_bin_distribution_decodes_to_fractional_distance():
    d = torch.full((4, 16), -1e4)
    d[:, 3] = d[:, 4] = 0.0  # equal mass on bins 3 and 4 -> 3.5
    torch.testing.assert_close(dfl_distances(d.flatten()), torch.full((4,), 3.5))


def _outputs(boxes_bins, logits, anchors, strides):
    dist = torch.stack([_one_hot_dist(b) for b in boxes_bins]).unsqueeze(0)
    return RawOutputs(box_dist=dist, logits=torch.tensor(logits).unsqueeze(0), anchors=anchors, strides=strides)


def test_postprocess_nms_threshold_mask_and_max_det():
    anchors = torch.tensor([[40.0, 40.0], [41.0, 40.0], [200.0, 200.0]])
    strides = torch.tensor([8.0, 8.0, 8.0])
    big = 5.0  # sigmoid 0.993
    logits = [[big, -big], [big - 1, big - 2], [-big, -1.0]]  # anchor 2 class 1 scores 0.269
    out = _outputs([[2, 2, 2, 2]] * 3, logits, anchors, strides)
    boxes, scores, labels = postprocess(out, conf=0.5, iou=0.5)[0]
    # anchors 0 and 1 overlap: class 0 keeps anchor 0 only; class 1 of anchor 1 is another class -> kept
    assert labels.tolist() == [0, 1]
    torch.testing.assert_close(boxes[0], torch.tensor([24.0, 24.0, 56.0, 56.0]))
    assert scores[0] > scores[1]
    boxes, scores, labels = postprocess(out, conf=0.1, iou=0.5)[0]
    assert labels.tolist() == [0, 1, 1]  # the low-score box far away survives a lower threshold
    _, _, labels = postprocess(out, conf=0.1, iou=0.5, text_mask=torch.tensor([True, False]))[0]
    assert labels.tolist() == [0]
    boxes, _, _ = postprocess(out, conf=0.1, iou=0.5, max_det=1)[0]
    assert boxes.shape == (1, 4)
    boxes, scores, labels = postprocess(out, conf=0.9999)[0]
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)
