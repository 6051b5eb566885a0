"""Mask AP (``iouType="segm"``) against hand-computed cases on a 4-image, 32 px ground truth.

GT (all images 32 x 32):
  image 1: scratch, RLE mask = the 8 x 8 square at (4, 4); plus a box-only scratch at (20, 20, 6, 6)
  image 2: hole (unseen), polygon = the 8 x 8 square at (16, 16)
  image 3: box-only scratch at (2, 2, 10, 10)          -> no mask ground truth: left out of mask AP
  image 4: box-only stain (a class without any mask)  -> left out of mask AP
so mask AP is over 2 images / 2 classes (scratch, hole).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from rtvp.cli.main import app
from rtvp.errors import DataError
from rtvp.evaluation.evaluator import evaluate
from rtvp.evaluation.mask_eval import carries_masks, has_mask, mask_ground_truth, mask_scope
from rtvp.evaluation.metrics import mask_area

SIZE = 32
CATS = [
    {"id": 1, "name": "scratch", "scene": "metal", "supercategory": "metal", "split": "seen"},
    {"id": 2, "name": "hole", "scene": "wood", "supercategory": "wood", "split": "unseen"},
    {"id": 3, "name": "stain", "scene": "wood", "supercategory": "wood", "split": "seen"},
]
MASK_KEYS = ("mask_AP", "mask_AP50", "mask_AP75", "mask_images", "mask_classes")


def square(x: int, y: int, w: int, h: int) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), dtype=bool)
    m[y:y + h, x:x + w] = True
    return m


def rle(m: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def make_gt(with_masks: bool = True) -> dict:
    images = [{"id": i, "file_name": f"images/{i}.png", "width": SIZE, "height": SIZE} for i in (1, 2, 3, 4)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 8, 8], "segmentation": rle(square(4, 4, 8, 8))},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 20, 6, 6], "segmentation": []},
        {"id": 3, "image_id": 2, "category_id": 2, "bbox": [16, 16, 8, 8],
         "segmentation": [[16, 16, 24, 16, 24, 24, 16, 24]]},
        {"id": 4, "image_id": 3, "category_id": 1, "bbox": [2, 2, 10, 10]},
        {"id": 5, "image_id": 4, "category_id": 3, "bbox": [5, 5, 10, 10], "segmentation": []},
    ]
    for a in anns:
        a.update(area=a["bbox"][2] * a["bbox"][3], iscrowd=0)
        if not with_masks:
            a["segmentation"] = []
    return {"images": images, "annotations": anns, "categories": CATS}


def perfect(box_only_score: float = 0.99) -> list[dict]:
    """A detection per GT box (box exact); masks exact where GT has one, the filled box elsewhere.

    The box-only objects get the higher score, so they would rank first if mask AP counted them.
    """
    out = []
    for a in make_gt()["annotations"]:
        x, y, w, h = a["bbox"]
        masked = has_mask(a.get("segmentation"))
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": [x, y, w, h],
                    "score": 0.9 if masked else box_only_score, "segmentation": rle(square(x, y, w, h))})
    return out


def test_exact_masks_give_one_over_the_mask_images_and_classes():
    m = evaluate(make_gt(), perfect(), "closed")
    assert m["AP"] == pytest.approx(1.0)
    assert (m["mask_AP"], m["mask_AP50"], m["mask_AP75"]) == (pytest.approx(1.0),) * 3
    assert (m["mask_images"], m["mask_classes"]) == (2, 2)
    assert m["per_class"]["scratch"]["mask_AP"] == pytest.approx(1.0)
    assert "mask_AP" not in m["per_class"]["stain"]  # box-only class
    assert mask_scope(m) == ("mask AP over 2 images / 2 classes with mask ground truth (box-only images and "
                             "classes are left out)")


def test_l_shaped_masks_in_exact_boxes_score_zero_mask_ap50_but_full_box_ap():
    preds = perfect()
    ell = square(4, 4, 8, 1) | square(4, 4, 1, 8)  # 15 px, bbox (4, 4, 8, 8): IoU with the square 15 / 64
    preds[0]["segmentation"] = rle(ell)
    preds[2]["segmentation"] = rle(square(16, 16, 8, 1) | square(16, 16, 1, 8))
    m = evaluate(make_gt(), preds, "closed")
    assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0)
    assert m["mask_AP50"] == 0.0 and m["mask_AP"] == 0.0


def test_iou_between_thresholds():
    preds = perfect()
    preds[0]["segmentation"] = rle(square(4, 4, 8, 5))  # 40 of 64 px: IoU 0.625 -> matched at .50, .55, .60 only
    m = evaluate(make_gt(), preds, "generalized")
    assert m["per_class"]["scratch"]["mask_AP"] == pytest.approx(0.3)
    assert m["per_class"]["scratch"]["mask_AP50"] == pytest.approx(1.0)
    assert m["mask_AP"] == pytest.approx((0.3 + 1.0) / 2)
    assert m["mask_AP50"] == pytest.approx(1.0) and m["mask_AP75"] == pytest.approx(0.5)
    assert m["mask_AP_seen"] == pytest.approx(0.3) and m["mask_AP_unseen"] == pytest.approx(1.0)


def test_false_positive_counts_in_a_mask_image_but_not_in_a_box_only_image():
    fp = {"category_id": 1, "bbox": [0, 24, 4, 4], "score": 0.95, "segmentation": rle(square(0, 24, 4, 4))}
    # in image 1 (mask GT): scratch ranks FP then TP -> precision 1/2 at every recall point; hole stays 1
    m = evaluate(make_gt(), [*perfect(), dict(fp, image_id=1)], "closed")
    assert m["per_class"]["scratch"]["mask_AP"] == pytest.approx(0.5)
    assert m["mask_AP"] == pytest.approx(0.75)
    # the same detection in image 3 (box-only GT) does not touch mask AP
    m = evaluate(make_gt(), [*perfect(), dict(fp, image_id=3)], "closed")
    assert m["mask_AP"] == pytest.approx(1.0)


def test_box_only_object_in_a_mask_image_is_ignored_not_missed():
    # drop the detection of the box-only scratch in image 1: box AP loses it (3 scratch boxes, 2 found -> recall
    # 2/3 -> 67 of 101 recall points), mask AP does not (it is an ignore region, not a missed mask)
    preds = [p for p in perfect() if p["bbox"] != [20, 20, 6, 6]]
    m = evaluate(make_gt(), preds, "closed")
    assert m["per_class"]["scratch"]["AP"] == pytest.approx(67 / 101)
    assert m["per_class"]["scratch"]["mask_AP"] == pytest.approx(1.0)
    # and a high-scored detection on it (kept in perfect(), score 0.99) is neither a TP nor an FP
    assert evaluate(make_gt(), perfect(), "closed")["per_class"]["scratch"]["mask_AP"] == pytest.approx(1.0)


def test_results_without_segmentation_have_no_mask_keys_and_same_box_metrics():
    with_masks = evaluate(make_gt(), perfect(), "generalized")
    boxes_only = [{k: v for k, v in p.items() if k != "segmentation"} for p in perfect()]
    m = evaluate(make_gt(), boxes_only, "generalized")
    assert not any(k.startswith("mask_") for k in m)
    assert not any(k.startswith("mask_") for v in m["per_class"].values() for k in v)
    assert mask_scope(m) is None
    for k, v in m.items():
        if k != "per_class":
            assert with_masks[k] == v, k


def test_ground_truth_without_masks_gives_none_over_zero_images():
    m = evaluate(make_gt(with_masks=False), perfect(), "closed")
    assert m["mask_AP"] is None and (m["mask_images"], m["mask_classes"]) == (0, 0)
    assert m["AP"] == pytest.approx(1.0)
    assert mask_scope(m).startswith("mask AP not computed")


def test_open_protocol_uses_the_unseen_mask_classes():
    preds = [p for p in perfect() if p["category_id"] == 2]
    m = evaluate(make_gt(), preds, "open")
    assert (m["mask_AP"], m["mask_images"], m["mask_classes"]) == (pytest.approx(1.0), 1, 1)


def test_mask_ground_truth_keeps_mask_images_and_turns_box_only_annotations_into_crowd():
    gt, images, cats = mask_ground_truth(make_gt(), [1, 2, 3])
    assert (images, cats) == ([1, 2], [1, 2])
    assert [im["id"] for im in gt["images"]] == [1, 2]
    by_id = {a["id"]: a for a in gt["annotations"]}
    assert sorted(by_id) == [1, 2, 3]
    assert by_id[2]["iscrowd"] == 1 and by_id[2]["segmentation"] == [[20, 20, 26, 20, 26, 26, 20, 26]]
    assert by_id[1]["iscrowd"] == 0


def test_faster_backend_gives_identical_mask_numbers():
    preds = perfect()
    preds[0]["segmentation"] = rle(square(4, 4, 8, 5))
    a, b = evaluate(make_gt(), preds, "closed"), evaluate(make_gt(), preds, "closed", backend="faster")
    for k in MASK_KEYS:
        assert a[k] == pytest.approx(b[k], abs=1e-12), k


@pytest.mark.parametrize(("seg", "expected"), [
    (None, False), ([], False), ({}, False), ([[]], False), ([[1, 2, 3, 4]], False),
    ([[0, 0, 4, 0, 4, 4]], True), ({"size": [4, 4], "counts": "52"}, True),
])
def test_has_mask(seg, expected):
    assert has_mask(seg) is expected


def test_mask_area_of_each_segmentation_form():
    assert mask_area(rle(square(4, 4, 8, 5)), SIZE, SIZE) == 40.0
    # uncompressed RLE, column-major: 4 x 4 image with the 2 x 2 square at rows/cols 1..2
    assert mask_area({"size": [4, 4], "counts": [5, 2, 2, 2, 5]}, 4, 4) == 4.0
    assert mask_area([[16, 16, 24, 16, 24, 24, 16, 24]], SIZE, SIZE) == 64.0


@pytest.mark.parametrize(("change", "match"), [
    ({"segmentation": None}, r"predictions\[1\]: no 'segmentation'"),
    ({"segmentation": {"size": [64, 64], "counts": "x"}}, r"size \[64, 64\] differs from image 1's"),
    ({"segmentation": {"size": [32, 32], "counts": b"x"}}, "RLE dict"),
    ({"segmentation": "x"}, "list of polygons"),
])
def test_bad_segmentations_are_named(change, match):
    preds = perfect()
    preds[1].update(change)
    with pytest.raises(DataError, match=match):
        evaluate(make_gt(), preds, "closed")


def test_missing_segmentation_key_next_to_others_is_an_error():
    preds = perfect()
    del preds[2]["segmentation"]
    with pytest.raises(DataError, match=r"predictions\[2\]: no 'segmentation'"):
        carries_masks(make_gt(), preds)
    assert carries_masks(make_gt(), []) is False


def _bench(tmp_path, gt):
    (tmp_path / "annotations").mkdir(parents=True)
    for name in ("closed_val", "open_val"):
        (tmp_path / "annotations" / f"{name}.json").write_text(json.dumps(gt))
    return tmp_path


def test_cli_val_scores_masks_of_a_predictions_file(tmp_path):
    bench = _bench(tmp_path / "bench", make_gt())
    pred_file = tmp_path / "pred.json"
    pred_file.write_text(json.dumps(perfect()))
    args = ["val", "--predictions", str(pred_file), "--data", str(bench), "--protocol", "generalized"]
    res = CliRunner().invoke(app, [*args, "--json", "--no-diagnostics"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["mask_AP"] == pytest.approx(1.0) and out["mask_AP_unseen"] == pytest.approx(1.0)
    assert (out["mask_images"], out["mask_classes"]) == (2, 2)
    res = CliRunner().invoke(app, [*args, "--no-diagnostics"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "mask_AP 1.0000" in res.output and "AP 1.0000" in res.output
    assert "mask AP over 2 images / 2 classes with mask ground truth" in res.output


def test_a_mask_model_that_found_nothing_scores_zero_mask_ap_not_absent():
    """``masks=True`` (the results come from a mask model): no detections at all is mask AP 0 over the mask images."""
    m = evaluate(make_gt(), [], "closed", masks=True)
    assert (m["mask_AP"], m["mask_AP50"], m["mask_images"], m["mask_classes"]) == (0.0, 0.0, 2, 2)
    assert not any(k.startswith("mask_") for k in evaluate(make_gt(), [], "closed"))  # a box model: no mask keys


def test_checkpoint_masks_reads_the_model_config():
    from rtvp.evaluation.inference import checkpoint_masks

    assert checkpoint_masks({"model_config": {"masks": True}})
    assert not checkpoint_masks({"model_config": {"masks": False}}) and not checkpoint_masks({"model_config": None})
    assert checkpoint_masks({"model_config": {"masks": True}}, results=[])  # a mask model that found nothing
    assert not checkpoint_masks("never/read.pt", results=[{"image_id": 1}])  # results that speak for themselves
