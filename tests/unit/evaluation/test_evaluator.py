"""Evaluator against hand-computed cases (COCO's 101-point interpolated AP)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rtvp.cli.main import app
from rtvp.errors import DataError
from rtvp.evaluation.evaluator import evaluate
from rtvp.evaluation.metrics import harmonic_mean
from rtvp.evaluation.plots import confusion_matrix

CATS = [
    {"id": 1, "name": "scratch on metal", "scene": "metal", "supercategory": "metal", "split": "seen"},
    {"id": 2, "name": "hole on wood", "scene": "wood", "supercategory": "organic", "split": "seen"},
    {"id": 3, "name": "crack on wood", "scene": "wood", "supercategory": "organic", "split": "unseen"},
]
BOXES = {1: [10, 10, 40, 40], 2: [50, 50, 30, 20], 3: [5, 60, 60, 10], 4: [70, 5, 20, 20]}


def make_gt(cats=CATS):
    images = [{"id": i, "file_name": f"images/{i}.png", "width": 128, "height": 128} for i in (1, 2, 3, 4)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": BOXES[1]},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": BOXES[2]},
        {"id": 3, "image_id": 3, "category_id": 2, "bbox": BOXES[3]},
        {"id": 4, "image_id": 4, "category_id": 3, "bbox": BOXES[4]},
    ]
    for a in anns:
        a.update(area=a["bbox"][2] * a["bbox"][3], iscrowd=0, segmentation=[])
    return {"images": images, "annotations": anns, "categories": cats}


def perfect(gt, score=0.9):
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": score}
            for a in gt["annotations"]]


def test_perfect_predictions_give_one():
    gt = make_gt()
    m = evaluate(gt, perfect(gt), "closed")
    for k in ("AP", "AP50", "AP75"):
        assert m[k] == pytest.approx(1.0)
    assert all(v["AP"] == pytest.approx(1.0) for v in m["per_class"].values())
    assert m["per_scene"]["wood"]["classes"] == 2


def test_one_miss_halves_recall():
    gt = make_gt()
    preds = [p for p in perfect(gt) if p["image_id"] != 2]  # class 1 has 2 GT, one found
    m = evaluate(gt, preds, "closed")
    # precision 1 up to recall 0.5 (51 of the 101 recall points), 0 after
    assert m["per_class"]["scratch on metal"]["AP"] == pytest.approx(51 / 101)
    assert m["AP"] == pytest.approx((51 / 101 + 1 + 1) / 3)


def test_false_positive_ranked_above_true_positive():
    gt = make_gt()
    preds = perfect(gt)
    fp = {"image_id": 3, "category_id": 2, "bbox": [100, 100, 20, 20], "score": 0.95}
    m = evaluate(gt, [*preds, fp], "closed")
    # hole: FP first (P=0), then TP -> P=0.5 at recall 1 -> interpolated precision 0.5 everywhere
    assert m["per_class"]["hole on wood"]["AP"] == pytest.approx(0.5)
    fp["score"] = 0.1  # ranked below the TP: no effect
    assert evaluate(gt, [*preds, fp], "closed")["per_class"]["hole on wood"]["AP"] == pytest.approx(1.0)


def test_class_confusion_scores_zero():
    gt = make_gt()
    preds = perfect(gt)
    preds[2].update(category_id=1, score=0.95)  # the hole predicted as scratch, ranked first
    m = evaluate(gt, preds, "closed")
    assert m["per_class"]["hole on wood"]["AP"] == 0.0
    # scratch ranks FP, TP, TP: precision 0, 1/2, 2/3 -> interpolated 2/3 at every recall point
    assert m["per_class"]["scratch on metal"]["AP"] == pytest.approx(2 / 3)


def test_open_protocol_uses_only_unseen_classes():
    gt = make_gt()
    preds = [p for p in perfect(gt) if p["category_id"] == 3]
    m = evaluate(gt, preds, "open")
    assert list(m["per_class"]) == ["crack on wood"]
    assert m["AP"] == pytest.approx(1.0)


def test_generalized_reports_seen_unseen_and_harmonic_mean():
    gt = make_gt()
    preds = [p for p in perfect(gt) if p["image_id"] != 2]  # seen: 51/101 and 1.0; unseen: 1.0
    m = evaluate(gt, preds, "generalized")
    seen = (51 / 101 + 1.0) / 2
    assert m["AP_seen"] == pytest.approx(seen)
    assert m["AP_unseen"] == pytest.approx(1.0)
    assert m["HM"] == pytest.approx(2 * seen / (seen + 1))
    assert harmonic_mean(0.0, 0.5) == 0.0 and harmonic_mean(None, 0.5) is None


def test_frequency_buckets_from_training_counts():
    gt = make_gt()
    train = {"annotations": [{"category_id": 1}] * 150 + [{"category_id": 2}] * 10 + [{"category_id": 3}] * 3}
    m = evaluate(gt, perfect(gt), "closed", train_gt=train)
    assert m["frequency"]["frequent"]["classes"] == ["scratch on metal"]
    assert m["frequency"]["common"]["classes"] == ["hole on wood"]
    assert m["frequency"]["rare"]["classes"] == ["crack on wood"]


def test_empty_predictions_score_zero():
    m = evaluate(make_gt(), [], "closed")
    assert m["AP"] == 0.0 and m["num_predictions"] == 0


def test_faster_backend_gives_identical_numbers():
    rng = np.random.default_rng(0)
    gt = make_gt()
    preds = []
    for a in gt["annotations"]:
        for _ in range(5):
            jitter = (np.array(a["bbox"]) + rng.normal(0, 4, 4)).clip(1).tolist()
            preds.append({"image_id": a["image_id"], "category_id": int(rng.integers(1, 4)), "bbox": jitter,
                          "score": float(rng.random())})
    a, b = evaluate(gt, preds, "generalized"), evaluate(gt, preds, "generalized", backend="faster")
    for k in ("AP", "AP50", "AP75", "AP_seen", "AP_unseen"):
        assert a[k] == pytest.approx(b[k], abs=1e-12)
    assert a["per_class"] == b["per_class"]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}, "image_id 99"),
        ({"image_id": 1, "category_id": 7, "bbox": [0, 0, 1, 1], "score": 1}, "category_id 7"),
        ({"image_id": 1, "category_id": 1, "score": 1}, "missing"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, float("nan"), 1], "score": 1}, "finite"),
    ],
)
def test_bad_predictions_are_named(bad, match):
    with pytest.raises(DataError, match=match):
        evaluate(make_gt(), [bad], "closed")


def test_open_protocol_without_unseen_classes_is_an_error():
    cats = [dict(c, split="seen") for c in CATS]
    with pytest.raises(DataError, match="unseen"):
        evaluate(make_gt(cats), [], "open")


def test_confusion_matrix_hand_case():
    gt = make_gt()
    preds = perfect(gt)
    preds[2]["category_id"] = 1  # hole -> scratch
    preds.append({"image_id": 1, "category_id": 2, "bbox": [90, 90, 10, 10], "score": 0.9})  # FP
    preds.append({"image_id": 4, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.1})  # below conf
    m = confusion_matrix(gt, preds, conf=0.25)
    expected = np.zeros((4, 4), dtype=int)
    expected[0, 0] = 2  # scratches found
    expected[0, 1] = 1  # hole predicted as scratch
    expected[2, 2] = 1  # crack found
    expected[1, 3] = 1  # FP hole on background
    np.testing.assert_array_equal(m, expected)


def _bench(tmp_path, gt):
    (tmp_path / "annotations").mkdir(parents=True)
    for name in ("closed_val", "closed_train", "open_val", "open_train"):
        (tmp_path / "annotations" / f"{name}.json").write_text(json.dumps(gt))
    return tmp_path


def test_cli_val_predictions_json(tmp_path):
    gt = make_gt()
    bench = _bench(tmp_path / "bench", gt)
    pred_file = tmp_path / "pred.json"
    pred_file.write_text(json.dumps(perfect(gt)))
    res = CliRunner().invoke(app, ["val", "--predictions", str(pred_file), "--data", str(bench),
                                   "--protocol", "generalized", "--json", "--plots", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for k in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        assert k in out
    assert out["AP"] == pytest.approx(1.0) and out["HM"] == pytest.approx(1.0)
    assert (tmp_path / "plots" / "pr_curve.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "confusion_matrix.png").stat().st_size > 1000


def test_cli_val_needs_exactly_one_input(tmp_path):
    bench = _bench(tmp_path / "bench", make_gt())
    res = CliRunner().invoke(app, ["val", "--data", str(bench)])
    assert res.exit_code != 0
    assert "exactly one of --weights" in str(res.exception)
