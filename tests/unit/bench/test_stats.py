from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from tinybench import write_tiny_bench

from rtvp.bench.stats import compute_stats, markdown_table, plot_longtail, write_report
from rtvp.errors import DataError


@pytest.fixture()
def bench(tmp_path):
    return write_tiny_bench(tmp_path)


def test_class_rows_hand_counted(bench):
    stats = compute_stats(bench)
    assert stats.classes.headers == ["id", "class", "scene", "supercategory", "split", "images", "instances",
                                     "train", "val", "small", "medium", "large"]
    assert stats.classes.rows == [
        [1, "scratch on metal", "metal", "surface", "seen", 2, 2, 2, 0, 1, 0, 1],
        [2, "hole on metal", "metal", "surface", "seen", 2, 2, 1, 1, 1, 1, 0],
        [3, "crack on wood", "wood", "surface", "unseen", 1, 1, 1, 0, 1, 0, 0],
    ]
    assert stats.class_counts == [("scratch on metal", 2, "seen"), ("hole on metal", 2, "seen"),
                                  ("crack on wood", 1, "unseen")]


def test_scene_super_split_and_totals(bench):
    stats = compute_stats(bench)
    assert stats.scenes.rows == [
        ["metal", "surface", 2, 2, 0, 3, 0, 2, 1, 2, 4, 2, 1, 1],
        ["wood", "surface", 1, 0, 1, 2, 1, 1, 1, 0, 1, 1, 0, 0],
    ]
    assert stats.scenes.headers[7:11] == ["train images", "val images", "open train images", "instances"]
    assert stats.warnings == []  # wood has no seen class; metal keeps both train images
    assert stats.supercategories.rows == [["surface", 2, 3, 5, 5]]
    assert stats.splits == {
        "closed_train": {"images": 3, "instances": 4, "classes": 3},
        "closed_val": {"images": 2, "instances": 1, "classes": 1},
        "open_train": {"images": 2, "instances": 3, "classes": 2},
        "open_val": {"images": 3, "instances": 2, "classes": 2},
    }
    assert stats.totals == {"images": 5, "instances": 5, "classes": 3, "seen": 2, "unseen": 1,
                            "empty_images": 1, "scenes": 2}
    assert (stats.name, stats.version) == ("tiny", "0.1")
    assert ["morphology", "irregular", 5] in stats.attributes.rows


def test_size_falls_back_to_area_without_attributes(bench):
    path = bench / "annotations" / "closed_train.json"
    data = json.loads(path.read_text())
    for a in data["annotations"]:
        del a["attributes"]
    path.write_text(json.dumps(data))
    # scratch 100x5=500 small, 100x100 large; hole 40x40=1600 medium; crack 400 small (val file unchanged)
    rows = {r[1]: r[9:] for r in compute_stats(bench).classes.rows}
    assert rows == {"scratch on metal": [1, 0, 1], "hole on metal": [1, 1, 0], "crack on wood": [1, 0, 0]}


def test_write_report_files(bench):
    write_report(bench)
    report = bench / "report"
    md = (report / "stats.md").read_text()
    assert md.startswith("# tiny v0.1")
    assert "5 images (1 defect-free), 5 instances, 3 classes (2 seen / 1 unseen), 2 scenes." in md
    assert "| 1 | scratch on metal | metal | surface | seen | 2 | 2 | 2 | 0 | 1 | 0 | 1 |" in md
    assert "| wood | surface | 1 | 0 | 1 | 2 | 1 | 1 | 1 | 0 | 1 | 1 | 0 | 0 |" in md
    assert "## Warnings" not in md
    assert "| open_val | 3 | 2 | 2 |" in md
    rows = list(csv.reader((report / "scenes.csv").open()))
    assert rows[0][0] == "scene" and rows[1][:6] == ["metal", "surface", "2", "2", "0", "3"]
    assert len(list(csv.reader((report / "classes.csv").open()))) == 4
    png = cv2.imread(str(report / "longtail.png"))
    assert png is not None and png.shape[0] > 100 and png.shape[1] > 100
    assert not [p for p in report.iterdir() if p.name.endswith(".tmp")]


def test_scene_losing_its_open_train_images_is_warned(bench):
    path = bench / "annotations" / "open_train.json"
    data = json.loads(path.read_text())
    data["images"] = [im for im in data["images"] if im["id"] != 1]  # metal keeps 1 of its 2 train images
    path.write_text(json.dumps(data))
    assert compute_stats(bench).warnings == []  # 1 >= 10 % of 2
    data["images"] = []
    path.write_text(json.dumps(data))
    stats = compute_stats(bench)
    assert stats.warnings == [
        "scene 'metal': open_train keeps 0 of its 2 closed_train images (the others hold an unseen class), so the "
        "open protocol barely trains its 2 seen classes; name other classes in the recipe's split.unseen_classes, or "
        "change split.seed"]
    assert stats.scenes.rows[0][9] == 0
    write_report(bench)
    md = (bench / "report" / "stats.md").read_text()
    assert "## Warnings\n\n- scene 'metal': open_train keeps 0 of its 2" in md


def test_longtail_is_deterministic_and_handles_zero_counts():
    counts = [("a", 0, "seen"), ("b", 100, "unseen"), ("c", 3, "seen")]
    assert plot_longtail(counts) == plot_longtail(counts)
    img = cv2.imdecode(np.frombuffer(plot_longtail(counts), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None


def test_markdown_escapes_pipes():
    from rtvp.bench.stats import Table

    text = markdown_table(Table("t", ["a", "n"], [["x|y", 1]]))
    assert text.splitlines() == ["| a | n |", "|---|---:|", "| x\\|y | 1 |"]


def test_missing_split_names_file(bench):
    (bench / "annotations" / "open_val.json").unlink()
    with pytest.raises(DataError, match="open_val.json: split file not found"):
        compute_stats(bench)


def test_malformed_split_names_file(bench):
    (bench / "annotations" / "closed_val.json").write_text("{not json")
    with pytest.raises(DataError, match="closed_val.json: split file is not valid JSON \\(line 1"):
        write_report(bench)
    (bench / "annotations" / "closed_val.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="'annotations' missing"):
        write_report(bench)
