"""The agreement filter on hand-built prediction pairs (no model involved)."""

import numpy as np
import pytest

from rtvp.annotate.agreement import ImageLabels, agree


def L(*rows):  # noqa: N802 - (x1, y1, x2, y2, score, cat) rows -> ImageLabels
    a = np.array(rows, dtype=float).reshape(-1, 6)
    return ImageLabels(a[:, :4], a[:, 4], a[:, 5].astype(int))


def test_agreed_pair_is_fused_score_weighted():
    r = agree(L((0, 0, 10, 10, 0.8, 1)), L((2, 0, 12, 10, 0.2, 1)), iou=0.5)
    assert r.boxes == pytest.approx(np.array([[0.4, 0.0, 10.4, 10.0]]))  # (0.8 * b_ov + 0.2 * b_ex) / 1.0
    assert r.scores == pytest.approx([0.4]) and r.cats.tolist() == [1]  # sqrt(0.8 * 0.2)
    assert r.score_ov == pytest.approx([0.8]) and r.score_expert == pytest.approx([0.2])
    assert r.iou == pytest.approx([8 / 12]) and r.disagreements == [] and r.redundant == 0


def test_class_conflict_low_agreement_and_one_only():
    ov = L((0, 0, 10, 10, 0.9, 1),        # same box, other class -> class conflict
           (40, 40, 50, 50, 0.7, 2),      # IoU 0.25 with the expert's box, same class -> low agreement
           (100, 100, 110, 110, 0.6, 1))  # nothing there for the expert -> ov only
    ex = L((0, 0, 10, 10, 0.8, 2),
           (44, 40, 54, 50, 0.5, 2),      # [44, 54]: IoU with [40, 50] = 6 / 14
           (200, 0, 210, 10, 0.4, 3))     # expert only
    r = agree(ov, ex, iou=0.5, min_iou=0.1)
    assert len(r.boxes) == 0
    by_reason = {}
    for d in r.disagreements:
        by_reason.setdefault(d["reason"], []).append(d)
    conflict, = by_reason["class_conflict"]
    assert conflict["iou"] == pytest.approx(1.0)
    assert [(c["model"], c["category_id"]) for c in conflict["candidates"]] == [("ov", 1), ("expert", 2)]
    low, = by_reason["low_agreement"]
    assert low["iou"] == pytest.approx(6 / 14, abs=1e-4) and {c["category_id"] for c in low["candidates"]} == {2}
    only = sorted((d["candidates"][0]["model"], d["candidates"][0]["bbox"][0]) for d in by_reason["one_model_only"])
    assert only == [("expert", 200.0), ("ov", 100.0)]


def test_min_iou_separates_different_objects():
    r = agree(L((0, 0, 10, 10, 0.9, 1)), L((9, 0, 19, 10, 0.9, 1)), iou=0.5, min_iou=0.1)  # IoU 1/19
    assert sorted(d["reason"] for d in r.disagreements) == ["one_model_only", "one_model_only"]


def test_redundant_multilabel_box_is_dropped_and_pairing_is_optimal():
    ov = L((0, 0, 10, 10, 0.9, 1), (0, 0, 10, 10, 0.3, 2),  # the same object also scored as class 2
           (20, 0, 30, 10, 0.8, 1), (25, 0, 35, 10, 0.7, 1))
    ex = L((24, 0, 34, 10, 0.6, 1), (0, 0, 10, 10, 0.7, 1), (21, 0, 31, 10, 0.5, 1))
    r = agree(ov, ex, iou=0.5)
    assert r.redundant == 1 and r.disagreements == []
    # one-to-one by maximum summed IoU: [20,30]<->[21,31] (9/11) and [25,35]<->[24,34] (9/11)
    order = np.argsort(r.boxes[:, 0])
    assert r.iou[order] == pytest.approx([1.0, 9 / 11, 9 / 11])
    assert r.boxes[order][:, 0] == pytest.approx([0.0, (0.8 * 20 + 0.5 * 21) / 1.3, (0.7 * 25 + 0.6 * 24) / 1.3])


def test_empty_inputs_and_bad_thresholds():
    empty = L()
    assert len(agree(empty, empty).boxes) == 0
    r = agree(L((0, 0, 5, 5, 0.5, 1)), empty)
    assert [d["reason"] for d in r.disagreements] == ["one_model_only"]
    with pytest.raises(ValueError):
        agree(empty, empty, iou=0.3, min_iou=0.4)
    with pytest.raises(ValueError):
        ImageLabels(np.zeros((2, 4)), np.zeros(1), np.zeros(2))
