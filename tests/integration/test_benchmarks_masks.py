"""Smoke test of ``benchmarks/masks.py --quick`` and ``benchmarks/masks_seeds.py`` over its results, plus the
threshold calibration of the crack-length measurement."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_benchmarks_quick import _argv, _csv, _results  # also puts benchmarks/ on sys.path


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench_masks")


def test_masks_quick(work: Path) -> None:
    import masks
    from _yolo import ultralytics_version

    yolo = ultralytics_version() is not None
    masks.main([*_argv(work), *([] if yolo else ["--no-yolo"])])
    res = _results(work, "masks")
    plain, seg = res["raw"]["expert-tiny"], res["raw"]["expert-tiny + masks"]
    assert seg["cost"]["params_M"] > plain["cost"]["params_M"] and seg["cost"]["GFLOPs"] > plain["cost"]["GFLOPs"]
    assert "mask_AP" not in plain["metrics"]  # no mask branch: box AP only
    length = seg["crack_length"]
    assert length["gt"] > 0 and length["matched"] == len(length["pairs"]) <= length["gt"]
    assert 0 < length["images"] == len(length["image_pairs"]) <= length["gt"]  # one union per val image of the scene
    assert all(g > 0 and p >= 0 and 0 <= iou <= 1 for g, p, iou in length["image_pairs"])
    by_conf = seg["crack_length_by_conf"]
    assert length == by_conf["0.25"] and str(seg["calibrated_conf_mask05"]) in by_conf  # 1st --length-conf
    assert set(seg["calibration_on_train"]) == {str(t) for t in masks.MASK_THR_GRID}
    assert all(set(by_thr) == {str(c) for c in masks.CONF_GRID} for by_thr in seg["calibration_on_train"].values())
    conf, thr = seg["calibrated_conf"], seg["calibrated_mask_thr"]
    on_train = seg["calibration_on_train"]
    best = min(r["image_median_rel_error"] for by_thr in on_train.values() for r in by_thr.values())
    assert on_train[str(thr)][str(conf)]["image_median_rel_error"] == best  # chosen on train
    at_05 = min(r["image_median_rel_error"] for r in on_train["0.5"].values())
    assert on_train["0.5"][str(seg["calibrated_conf_mask05"])]["image_median_rel_error"] == at_05 >= best
    assert seg["crack_length_calibrated"]["images"] == length["images"]
    matched = [by_conf[c]["matched"] for c in sorted(by_conf, key=float, reverse=True)]
    assert matched == sorted(matched)  # a lower threshold keeps a superset of the detections
    rows = _csv(work, "masks", "crack_length")
    assert [r["unit"] for r in rows] == ["crack (best-IoU mask)", "image (union of cracks)"] * (len(by_conf) + 1)
    assert [r["mask thr"] for r in rows[:-2]] == ["0.5"] * (2 * len(by_conf))
    assert sum(r["conf"].endswith("(calibrated)") for r in rows[:-2]) == 2
    assert [(r["conf"], r["mask thr"]) for r in rows[-2:]] == [(f"{conf} (calibrated)", f"{thr} (calibrated)")] * 2
    rows = ["expert-tiny", "expert-tiny + masks"] + (["YOLOv8n-seg (Ultralytics, scratch)"] if yolo else [])
    assert [r["Model"] for r in _csv(work, "masks", "masks")] == rows
    if yolo:  # its masks went through the yolo-seg export, Ultralytics and back into rtvp's mask evaluator
        baseline = res["raw"]["YOLOv8n-seg (Ultralytics, scratch)"]
        assert "mask mAP50-95" in baseline["train"]["own_val"]  # Ultralytics trained a segmentation model
        lines = [ln for f in Path(baseline["export"], "labels", "train").iterdir() for ln in f.read_text().splitlines()]
        assert lines and all(len(ln.split()) >= 7 for ln in lines)  # polygon labels, not boxes
        assert baseline["predictions"] == 0 or baseline["metrics"]["mask_images"] > 0


def test_masks_seeds_reads_the_masks_results(work: Path) -> None:
    """Over the quick masks run (test_masks_quick wrote it): the same figures, and a clear error for a missing tag."""
    import masks_seeds

    if not (work / "results" / "masks" / "quick" / "results.json").is_file():
        import masks

        masks.main([*_argv(work), "--no-yolo"])
    seg = _results(work, "masks")["raw"]["expert-tiny + masks"]
    masks_seeds.main([*_argv(work), "--runs", "quick"])
    res = _results(work, "masks_seeds")
    (rec,) = res["records"]  # one model with the mask branch
    assert (rec["seed"], rec["batch"], rec["epochs"], rec["model"]) == (0, 16, 30, "expert-tiny + masks")
    joint = seg["crack_length_calibrated"]["image_median_rel_error"]
    assert rec["err_joint"] == pytest.approx(100 * joint) and rec["mask_thr"] == f"{seg['calibrated_mask_thr']:g}"
    at05 = seg["crack_length_by_conf"][str(seg["calibrated_conf_mask05"])]["image_median_rel_error"]
    assert rec["err_mask05"] == pytest.approx(100 * at05)
    (row,) = _csv(work, "masks_seeds", "seeds")
    assert row["seeds"] == "0" and float(row["mean error % (both)"]) == pytest.approx(rec["err_joint"], abs=1e-3)
    with pytest.raises(SystemExit, match="run benchmarks/masks.py --tag nope first"):
        masks_seeds.main([*_argv(work), "--runs", "nope"])


def test_masks_calibration_picks_the_lowest_training_error() -> None:
    import masks

    def cell(err: float | None) -> dict[str, object]:
        return {"image_median_rel_error": err, "image_within_10pct": None, "matched": 0, "gt": 1}

    table = {str(t): {str(c): cell(0.5) for c in masks.CONF_GRID} for t in masks.MASK_THR_GRID}
    table["0.5"]["0.05"] = cell(0.2)
    table["0.3"]["0.01"] = cell(0.1)
    table["0.4"]["0.1"] = cell(0.1)  # tie with (0.01, 0.3): the higher confidence wins
    assert masks.calibrated(table, masks.MASK_THR_GRID) == (0.1, 0.4)
    assert masks.calibrated(table, [0.5]) == (0.05, 0.5)  # the confidence alone, at the default mask threshold
    empty = {t: {c: cell(None) for c in by} for t, by in table.items()}
    assert masks.calibrated(empty, [0.5]) == (max(masks.CONF_GRID), 0.5)
