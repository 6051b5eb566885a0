from __future__ import annotations

import json

import pytest
import yaml
from source_layouts import assert_valid_record, write_image

from rtvp.errors import ConfigError, DataError
from rtvp.sources import SOURCES

coco = SOURCES.get("coco")
yolo = SOURCES.get("yolo")

RLE = {"size": [10, 20], "counts": "0k51000"}


@pytest.fixture
def coco_root(tmp_path):
    write_image(tmp_path / "imgs/a.png", 20, 10)
    write_image(tmp_path / "imgs/sub/b.jpg", 8, 6)
    data = {
        "images": [{"id": 7, "file_name": "a.png", "width": 1, "height": 1}, {"id": 8, "file_name": "sub/b.jpg"}],
        "categories": [{"id": 1, "name": "scratch"}, {"id": 2, "name": "dent"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 2, "bbox": [1, 2, 3, 4], "segmentation": [[1, 2, 4, 2, 4, 6]]},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0.5, 0, 10, 5], "segmentation": RLE},
            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [0, 0, 20, 10], "iscrowd": 1},
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path


def test_coco_boxes_segmentation_crowd_and_negatives(coco_root):
    recs = list(coco(coco_root, annotations="ann.json", images="imgs"))
    for r in recs:
        assert_valid_record(r)
    a, b = recs
    assert (a.width, a.height) == (20, 10) and a.meta == {"coco_id": 7, "crowd": 1}
    assert [(x.label, x.bbox) for x in a.annotations] == [("dent", (1.0, 2.0, 4.0, 6.0)),
                                                          ("scratch", (0.5, 0.0, 10.5, 5.0))]
    assert a.annotations[0].segmentation == [[1.0, 2.0, 4.0, 2.0, 4.0, 6.0]] and a.annotations[1].segmentation == RLE
    assert b.path == coco_root / "imgs/sub/b.jpg" and b.annotations == []


@pytest.mark.parametrize(("edit", "pattern"), [
    (lambda d: d["annotations"].append({"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1]}), "missing from"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotations\[0\]: 'bbox'"),
    (lambda d: d["annotations"][0].update(category_id=5), r"annotations\[0\]: category_id 5"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, "w", 4]), r"annotations\[0\] bbox"),
    (lambda d: d["annotations"][0].update(segmentation=[[1, 2]]), r"annotations\[0\]: polygon"),
    (lambda d: d["images"].append({"id": 7, "file_name": "c.png"}), r"images\[2\] repeats"),
    (lambda d: d.pop("images"), "'images' list"),
])
def test_coco_malformed_names_file(coco_root, edit, pattern):
    data = json.loads((coco_root / "ann.json").read_text())
    edit(data)
    (coco_root / "ann.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=f"ann.json.*{pattern}"):
        list(coco(coco_root, annotations="ann.json", images="imgs"))


def test_coco_skip_bad_annotation_and_missing_file(coco_root, tmp_path):
    data = json.loads((coco_root / "ann.json").read_text())
    data["annotations"][0]["bbox"] = None
    (coco_root / "ann.json").write_text(json.dumps(data))
    recs = list(coco(coco_root, annotations="ann.json", images="imgs", on_error="skip"))
    assert "annotations[0]" in recs[0].meta["issues"][0] and len(recs[0].annotations) == 1
    with pytest.raises(DataError, match="not found"):
        list(coco(coco_root, annotations="nope.json", images="imgs"))


@pytest.fixture
def yolo_root(tmp_path):
    write_image(tmp_path / "images/train/a.jpg", 40, 20)
    write_image(tmp_path / "images/train/bg.jpg", 40, 20)
    write_image(tmp_path / "images/val/c.png", 10, 10)
    (tmp_path / "labels/train").mkdir(parents=True)
    (tmp_path / "labels/val").mkdir(parents=True)
    (tmp_path / "labels/train/a.txt").write_text("1 0.5 0.5 0.25 0.5\n\n0 0.1 0.2 0.6 0.2 0.35 0.8\n")
    (tmp_path / "labels/val/c.txt").write_text("0 0.5 0.5 1 1\n")
    return tmp_path


def test_yolo_folders_boxes_polygons_background(yolo_root):
    recs = list(yolo(yolo_root, names=["hole", "crack"]))
    for r in recs:
        assert_valid_record(r)
    a, bg, c = recs
    box, poly = a.annotations
    assert (box.label, box.bbox) == ("crack", (15.0, 5.0, 25.0, 15.0)) and box.segmentation is None
    assert poly.label == "hole" and poly.bbox == pytest.approx((4.0, 4.0, 24.0, 16.0))
    assert poly.segmentation == [pytest.approx([4.0, 4.0, 24.0, 4.0, 14.0, 16.0])]
    assert bg.annotations == [] and bg.label_file is None and "issues" not in bg.meta
    assert c.annotations[0].bbox == (0.0, 0.0, 10.0, 10.0)
    assert [x.label for x in next(iter(yolo(yolo_root))).annotations] == ["1", "0"]  # no names -> ids


def test_yolo_data_yaml_splits_and_names(yolo_root):
    (yolo_root / "val.txt").write_text("./images/val/c.png\n")
    cfg = {"path": ".", "train": "images/train", "val": "val.txt", "names": {0: "hole", 1: "crack"}}
    (yolo_root / "data.yaml").write_text(yaml.safe_dump(cfg))
    recs = list(yolo(yolo_root, data="data.yaml"))
    assert [(r.path.name, r.meta["split"]) for r in recs] == [("a.jpg", "train"), ("bg.jpg", "train"),
                                                             ("c.png", "val")]
    assert recs[0].annotations[0].label == "crack"
    assert [r.path.name for r in yolo(yolo_root, data="data.yaml", splits=["val"])] == ["c.png"]
    with pytest.raises(ConfigError, match="not found"):
        list(yolo(yolo_root, data="missing.yaml"))
    (yolo_root / "data.yaml").write_text("names: [a\n")
    with pytest.raises(DataError, match=r"data\.yaml: invalid YAML"):
        list(yolo(yolo_root, data="data.yaml"))


@pytest.mark.parametrize("line", ["0 0.5 0.5 0.2", "2 0.5 0.5 0.2 0.2", "-1 0.5 0.5 0.2 0.2", "0 a 0.5 0.2 0.2",
                                  "0 0.1 0.1 0.2 0.2 0.3", "1.5 0.5 0.5 0.2 0.2", "0 0.5 0.5 0.2 inf"])
def test_yolo_malformed_line_names_file_and_line(yolo_root, line):
    (yolo_root / "labels/val/c.txt").write_text(f"0 0.5 0.5 1 1\n{line}\n")
    with pytest.raises(DataError, match=r"c\.txt:2"):
        list(yolo(yolo_root, names=["hole", "crack"]))
    recs = list(yolo(yolo_root, names=["hole", "crack"], on_error="skip"))
    assert "c.txt:2" in recs[2].meta["issues"][0] and recs[2].annotations == []
