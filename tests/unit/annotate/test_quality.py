"""Annotation quality figures on hand-built cases with known answers."""

import copy
import json

import numpy as np
import pytest
from scipy.stats import f_oneway
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from rtvp.annotate.quality import (
    anova,
    cohen_kappa,
    compare_coco,
    format_report,
    match_boxes,
    match_files,
    summarize,
    write_report,
)
from rtvp.cli.main import app
from rtvp.errors import DataError

CATS = [{"id": 1, "name": "scratch"}, {"id": 2, "name": "hole"}]


def _labels_from_table(table):
    """Rater labels reproducing a confusion table (rows: rater a, columns: rater b)."""
    a, b = [], []
    for i, row in enumerate(table):
        for j, n in enumerate(row):
            a += [i] * n
            b += [j] * n
    return a, b


def test_kappa_on_hand_built_2x2_table():
    # po = 35/50 = 0.7; marginals a (25, 25), b (30, 20): pe = (25*30 + 25*20) / 50^2 = 0.5; kappa = 0.2 / 0.5
    a, b = _labels_from_table([[20, 5], [10, 15]])
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    # 3x3 with string labels: po = 0.8, pe = (4*4 + 3*3 + 3*3) / 100 = 0.34 -> kappa = 0.46 / 0.66
    a, b = _labels_from_table([[3, 1, 0], [0, 3, 0], [1, 0, 2]])
    names = np.array(["crack", "hole", "spot"])
    assert cohen_kappa(names[a], names[b]) == pytest.approx((0.8 - 0.34) / 0.66)


def test_kappa_matches_sklearn_and_edge_cases():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    b[:120] = a[:120]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(["x"] * 4, ["x"] * 4) == 1.0  # perfect agreement on one label
    assert cohen_kappa([], []) is None
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        cohen_kappa([1, 2], [1])


def _box(x, w=10.0, y=0.0, h=10.0):
    return [x, y, w, h]


def test_hungarian_beats_greedy_and_drops_zero_iou():
    # 1-D boxes (same y, height): IoU = overlap / union of the x intervals.
    ref = np.array([_box(10), _box(15)])            # [10, 20], [15, 25]
    cand = np.array([_box(11), _box(8)])            # [11, 21], [8, 18]
    # IoU r0c0 = 9/11, r0c1 = 8/12, r1c0 = 6/14, r1c1 = 3/17: greedy takes r0c0 (+ r1c1), sum 0.994;
    # the assignment maximising the summed IoU pairs r0c1 + r1c0 = 1.095.
    ri, ci, iou = match_boxes(ref, cand)
    assert ri.tolist() == [0, 1] and ci.tolist() == [1, 0]
    assert iou == pytest.approx([8 / 12, 6 / 14])
    ri, ci, iou = match_boxes(np.array([_box(0)]), np.array([_box(50), _box(5)]))
    assert ci.tolist() == [1] and iou == pytest.approx([5 / 15])
    ri, ci, iou = match_boxes(np.array([_box(0)]), np.array([_box(50)]))  # no overlap: not a pair
    assert len(ri) == len(ci) == len(iou) == 0
    assert len(match_boxes(np.zeros((0, 4)), np.array([_box(0)]))[0]) == 0


def _coco(images, anns):
    return {"images": images, "categories": CATS,
            "annotations": [{"id": k + 1, "image_id": i, "category_id": c, "bbox": b} for k, (i, c, b) in
                            enumerate(anns)]}


def _pair_files():
    """Reference 4 boxes / candidate 4 boxes on 2 images: IoUs 1, 90/110, 60/140, one FP, one FN."""
    images = [{"id": 1, "file_name": "a.png", "scene": "steel"}, {"id": 2, "file_name": "b.png", "scene": "wood"}]
    w = 100.0
    ref = _coco(images, [(1, 1, _box(0, w, 0, w)), (1, 2, _box(300, w, 0, w)), (2, 1, _box(0, w, 0, w)),
                         (2, 1, _box(500, w, 0, w))])
    cand = _coco(copy.deepcopy(images), [(1, 1, _box(0, w, 0, w)), (1, 1, _box(310, w, 0, w)),
                                         (2, 2, _box(40, w, 0, w)), (2, 2, _box(900, w, 0, w))])
    return ref, cand


def test_precision_recall_mean_iou_on_constructed_matches():
    ref, cand = _pair_files()
    r = compare_coco(ref, cand)
    ious = [1.0, 90 / 110, 60 / 140]
    assert r["matched"] == 3 and r["reference"] == 4 and r["candidate"] == 4
    assert r["mean_iou"] == pytest.approx(np.mean(ious))
    assert r["precision"] == pytest.approx({"0.5": 2 / 4, "0.75": 2 / 4, "0.95": 1 / 4})
    assert r["recall"] == pytest.approx({"0.5": 2 / 4, "0.75": 2 / 4, "0.95": 1 / 4})
    # labels of the pairs: (scratch, scratch), (hole, scratch), (scratch, hole)
    assert r["kappa"] == pytest.approx(cohen_kappa_score(["s", "h", "s"], ["s", "s", "h"]))
    assert r["label_accuracy"] == pytest.approx(1 / 3)
    steel, wood = r["per_scene"]["steel"], r["per_scene"]["wood"]
    assert steel["matched"] == 2 and steel["mean_iou"] == pytest.approx((1 + 90 / 110) / 2)
    assert steel["precision"]["0.95"] == pytest.approx(1 / 2) and steel["recall"]["0.5"] == pytest.approx(1)
    assert wood["matched"] == 1 and wood["mean_iou"] == pytest.approx(60 / 140)
    assert wood["precision"]["0.5"] == wood["recall"]["0.5"] == 0.0
    assert wood["kappa"] == 0.0  # one pair, labels disagree: po = pe = 0


def test_anova_p_equals_scipy_on_constructed_groups():
    groups = {"a": np.array([0.9, 0.8, 0.85, 0.95]), "b": np.array([0.5, 0.6, 0.7]), "c": np.array([0.75, 0.7])}
    f, p = anova({**groups, "lonely": np.array([0.1])})  # a one-value group is left out
    ref = f_oneway(*groups.values())
    assert f == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert anova({"a": groups["a"]}) == (None, None)
    assert anova({"a": np.ones(3), "b": np.ones(3)}) == (None, None)  # zero variance: undefined


def test_anova_through_matched_files_per_scene():
    images, ref_anns, cand_anns = [], [], []
    shifts = {"steel": [0, 2, 4, 6], "wood": [10, 20, 30], "glass": [1, 3]}
    expected = {}
    iid = 0
    for scene, ss in shifts.items():
        for s in ss:
            iid += 1
            images.append({"id": iid, "file_name": f"{iid}.png", "scene": scene})
            ref_anns.append((iid, 1, _box(0, 100.0, 0, 100.0)))
            cand_anns.append((iid, 1, _box(s, 100.0, 0, 100.0)))
        expected[scene] = [(100 - s) / (100 + s) for s in ss]
    r = compare_coco(_coco(images, ref_anns), _coco(images, cand_anns))
    assert r["anova_p"] == pytest.approx(f_oneway(*expected.values()).pvalue)
    assert set(r["per_scene"]) == set(shifts)
    assert r["per_scene"]["wood"]["mean_iou"] == pytest.approx(np.mean(expected["wood"]))


def test_join_on_file_name_filters_and_errors(tmp_path):
    ref, cand = _pair_files()
    for im in cand["images"]:  # other ids, same files
        im["id"] += 10
    for a in cand["annotations"]:
        a["image_id"] += 10
    cand["images"][1]["annotation_source"] = "auto"
    assert compare_coco(ref, cand)["matched"] == 3
    only_auto = compare_coco(ref, cand, annotation_source="auto")
    assert only_auto["images"] == 1 and only_auto["images_only_in_reference"] == 1
    m = match_files(ref, cand)
    assert len(m.iou) == 3 and summarize(m)["images"] == 2
    with pytest.raises(DataError, match="no image in common"):
        compare_coco(ref, {**cand, "images": [{"id": 99, "file_name": "z.png"}], "annotations": []})
    with pytest.raises(DataError, match="unknown image"):
        compare_coco(ref, {**cand, "annotations": [{"id": 1, "image_id": 5, "category_id": 1, "bbox": _box(0)}]})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        compare_coco(bad, cand)
    with pytest.raises(DataError, match="missing list 'annotations'"):
        compare_coco({"images": [], "categories": []}, cand)


def test_cli_json_keys_and_report_files(tmp_path):
    ref, cand = _pair_files()
    (tmp_path / "ref.json").write_text(json.dumps(ref))
    (tmp_path / "cand.json").write_text(json.dumps(cand))
    out = tmp_path / "report"
    res = CliRunner().invoke(app, ["data", "quality", str(tmp_path / "ref.json"), str(tmp_path / "cand.json"),
                                   "--json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert {"kappa", "mean_iou", "precision", "recall", "anova_p", "per_scene"} <= set(data)
    assert list(data["precision"]) == list(data["recall"]) == ["0.5", "0.75", "0.95"]
    assert json.loads((out / "report.json").read_text()) == data
    md = (out / "report.md").read_text()
    assert "Cohen's κ (2 classes)" in md and "| Precision (IoU ≥ 0.95) | 0.250 |" in md and "| steel |" in md
    assert (out / "iou_by_scene.png").stat().st_size > 0
    res = CliRunner().invoke(app, ["data", "quality", str(tmp_path / "ref.json")])
    assert res.exit_code != 0


def test_report_includes_noise_rows():
    ref, cand = _pair_files()
    r = compare_coco(ref, cand)
    r["noise"] = {"clean_AP50": 0.5, "levels": [{"percent": 0.0, "AP50": 0.5, "delta_AP50": 0.0},
                                                {"percent": 5.0, "AP50": 0.494, "delta_AP50": -0.006}]}
    md = format_report(r)
    assert "| 5% label noise ΔAP50 | -0.006 | AP50 0.494 vs clean 0.500 |" in md
    assert "0% label noise" not in md


def test_write_report_is_atomic_and_complete(tmp_path):
    ref, cand = _pair_files()
    paths = write_report(compare_coco(ref, cand), tmp_path / "r")
    assert [p.name for p in paths] == ["report.md", "report.json"]
    assert not list((tmp_path / "r").glob(".*tmp"))
