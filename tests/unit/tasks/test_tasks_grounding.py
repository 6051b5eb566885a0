import json
import math

import numpy as np
import pytest

from rtvp.errors import DataError
from rtvp.structures import Detections
from rtvp.tasks.grounding import evaluate_grounding, ground, grounding_queries, parse_query, rank
from rtvp.tasks.query import Constraints

# 300x300: A confident box near the right edge, B weaker box touching the left edge
TWO = Detections([[250, 100, 290, 140], [0, 120, 40, 160]], [0.9, 0.5], [0, 0], ["crack"])


def test_location_words_rerank(fake_predictor, tmp_path):
    image = np.zeros((300, 300, 3), np.uint8)
    pred = fake_predictor({("<array>", "crack"): TWO})
    top = ground(pred, image, "crack near the left edge")
    assert len(top) == 1 and top[0].index == 1 and top[0].prior == 1.0 and top[0].score == 0.5
    assert pred.calls == [("<array>", ["crack"])]  # the defect phrase is the single-prompt vocabulary
    both = ground(pred, image, "crack near the left edge", top_k=5)
    gap = 250 / 300 - 0.1  # right box: distance of its left side to the left edge band
    assert [b.index for b in both] == [1, 0]
    assert both[1].prior == pytest.approx(math.exp(-0.5 * (gap * 6) ** 2), rel=1e-3)
    assert [b.index for b in ground(pred, image, "crack")] == [0]  # no words: detector order
    assert [b.index for b in ground(pred, image, "crack on the right")] == [0]


def test_cjk_query_and_size_words(fake_predictor):
    pred = fake_predictor({("<array>", "裂纹"): TWO})
    image = np.zeros((300, 300, 3), np.uint8)
    assert ground(pred, image, "左边缘的裂纹")[0].index == 1
    dets = Detections([[0, 0, 10, 10], [100, 100, 200, 200]], [0.9, 0.6], [0, 0], ["hole"])
    c = parse_query("large hole").constraints
    assert [b.index for b in rank(dets, 300, 300, c, 2)] == [1, 0]  # 0.6 * 1 > 0.9 * 0.25
    assert rank(dets, 300, 300, Constraints(extreme="smallest"), 1)[0].index == 0


def test_empty_phrase_uses_checkpoint_vocabulary(fake_predictor):
    pred = fake_predictor({("<array>", None): TWO}, vocabulary=["crack"])
    assert ground(pred, np.zeros((300, 300, 3), np.uint8), "near the left edge")[0].index == 1
    assert pred.calls[-1][1] is None and pred.set_calls == [None]  # checkpoint vocabulary activated explicitly


def test_errors_and_no_candidates(fake_predictor, tmp_path):
    pred = fake_predictor({})
    image = np.zeros((50, 50, 3), np.uint8)
    assert ground(pred, image, "crack") == []
    with pytest.raises(DataError, match="empty grounding query"):
        ground(pred, image, "  ")
    with pytest.raises(DataError, match="top_k"):
        ground(pred, image, "crack", top_k=0)
    with pytest.raises(DataError, match="not a readable image"):
        ground(pred, tmp_path / "missing.png", "crack")


def test_evaluator_two_of_three(fake_predictor, tiny_bench, grounding_table):
    pred = fake_predictor(grounding_table)
    m = evaluate_grounding(pred, tiny_bench, "val", "closed")
    assert m["queries"] == 3 and m["correct"] == 2 and m["acc@0.5"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["per_type"] == {"crack": {"acc@0.5": 1.0, "queries": 2}, "hole": {"acc@0.5": 0.0, "queries": 1}}
    assert m["with_location"] == {"acc@0.5": 0.5, "queries": 2} and m["split"] == "closed_val"
    # the location words re-rank; only the defect phrase reaches the detector
    assert [(c[0], c[1]) for c in pred.calls] == [("a.png", ["crack"]), ("a.png", ["hole"]), ("b.png", ["crack"])]
    coco = json.loads((tiny_bench / "annotations" / "closed_val.json").read_text())
    assert [q[2] for q in grounding_queries(coco, "closed")] == ["crack at the top-left", "hole in the center", "crack"]
    # open protocol: unseen classes only (hole)
    m = evaluate_grounding(fake_predictor(grounding_table), tiny_bench, "open_val", "open")
    assert m["queries"] == 1 and m["acc@0.5"] == 0.0
    with pytest.raises(DataError, match="no 'test.json'"):
        evaluate_grounding(pred, tiny_bench, "test", "closed")
