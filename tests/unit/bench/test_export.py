from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from tinybench import write_tiny_bench

from rtvp.bench.export import export_benchmark, export_coco, export_yolo, yolo_labels
from rtvp.errors import ConfigError, DataError


@pytest.fixture()
def bench(tmp_path):
    return write_tiny_bench(tmp_path)


def test_yolo_labels_hand_checked(bench, tmp_path):
    data_yaml = export_yolo(bench, tmp_path / "y")
    out = tmp_path / "y"
    meta = yaml.safe_load(data_yaml.read_text())
    assert meta == {"path": str(out.absolute()), "train": "images/train", "val": "images/val",
                    "names": {0: "scratch on metal", 1: "hole on metal", 2: "crack on wood"}}
    # image 1 is 200x100: scratch [0, 0, 100, 5] and hole [50, 50, 40, 40]
    assert (out / "labels/train/metal__img1.txt").read_text() == (
        "0 0.250000 0.025000 0.500000 0.050000\n1 0.350000 0.700000 0.200000 0.400000\n")
    # image 3 is 64x48: crack [0, 0, 20, 20]
    assert (out / "labels/train/wood__img3.txt").read_text() == "2 0.156250 0.208333 0.312500 0.416667\n"
    assert (out / "labels/val/metal__img4.txt").read_text() == "1 0.975000 0.950000 0.050000 0.100000\n"
    assert (out / "labels/val/wood__img5.txt").read_text() == ""  # defect-free image: empty label file
    assert sorted(p.name for p in (out / "images/train").iterdir()) == ["metal__img1.png", "metal__img2.png",
                                                                       "wood__img3.png"]
    link = out / "images/val/metal__img4.png"
    assert link.is_symlink() and Path(os.readlink(link)) == (bench / "images/metal/img4.png").absolute()
    assert link.read_bytes() == (bench / "images/metal/img4.png").read_bytes()


def test_yolo_clips_and_drops_boxes():
    data = {"images": [{"id": 1, "width": 200, "height": 100}],
            "categories": [{"id": 5, "name": "b"}, {"id": 2, "name": "a"}],
            "annotations": [{"image_id": 1, "category_id": 5, "bbox": [-10, 90, 20, 20]},
                            {"image_id": 1, "category_id": 2, "bbox": [250, 10, 5, 5]},  # fully outside
                            {"image_id": 1, "category_id": 2, "bbox": [0, 0, 10, 10], "iscrowd": 1}]}
    # categories are indexed in id order: id 2 -> 0, id 5 -> 1
    assert yolo_labels(data) == {1: ["1 0.025000 0.950000 0.050000 0.100000"]}
    with pytest.raises(DataError, match="unknown image/category"):
        yolo_labels({**data, "annotations": [{"image_id": 9, "category_id": 5, "bbox": [0, 0, 1, 1]}]})


def test_open_protocol_and_copy(bench, tmp_path):
    export_yolo(bench, tmp_path / "y", protocol="open", link="copy")
    train = sorted(p.name for p in (tmp_path / "y/images/train").iterdir())
    val = sorted(p.name for p in (tmp_path / "y/images/val").iterdir())
    assert train == ["metal__img1.png", "metal__img2.png"]
    assert val == ["metal__img4.png", "wood__img3.png", "wood__img5.png"]
    assert not (tmp_path / "y/images/val/wood__img3.png").is_symlink()
    assert (tmp_path / "y/labels/val/wood__img3.txt").read_text().startswith("2 ")


def test_yolo_round_trip_through_converter(bench, tmp_path):
    from rtvp.sources import SOURCES

    if "yolo" not in SOURCES:
        pytest.skip("yolo converter not registered")
    export_yolo(bench, tmp_path / "y")
    records = list(SOURCES.get("yolo")(tmp_path / "y", data="data.yaml", splits=["train", "val"]))
    got = {(Path(r.path).name, a.label): a.bbox for r in records for a in r.annotations}
    anns = {}
    for split in ("closed_train", "closed_val"):
        d = json.loads((bench / "annotations" / f"{split}.json").read_text())
        names = {c["id"]: c["name"] for c in d["categories"]}
        files = {im["id"]: im["file_name"].removeprefix("images/").replace("/", "__") for im in d["images"]}
        for a in d["annotations"]:
            x, y, w, h = a["bbox"]
            anns[(files[a["image_id"]], names[a["category_id"]])] = (x, y, x + w, y + h)
    assert got.keys() == anns.keys() and len(records) == 5
    for key, box in anns.items():
        assert got[key] == pytest.approx(box, abs=1e-3)


def test_coco_export(bench, tmp_path):
    from pycocotools.coco import COCO

    ann_dir = export_coco(bench, tmp_path / "c")
    out = tmp_path / "c"
    for part, split in (("train", "closed_train"), ("val", "closed_val")):
        data = json.loads((ann_dir / f"{part}.json").read_text())
        assert data == json.loads((bench / "annotations" / f"{split}.json").read_text())
        for im in data["images"]:
            assert (out / im["file_name"]).read_bytes() == (bench / im["file_name"]).read_bytes()
        assert len(COCO(str(ann_dir / f"{part}.json")).getAnnIds()) == len(data["annotations"])


def test_overwrite_missing_image_and_bad_options(bench, tmp_path):
    export_benchmark(bench, tmp_path / "y", fmt="yolo")
    with pytest.raises(ConfigError, match="overwrite"):
        export_benchmark(bench, tmp_path / "y", fmt="yolo")
    export_benchmark(bench, tmp_path / "y", fmt="coco", overwrite=True)
    assert (tmp_path / "y/annotations/train.json").is_file() and not (tmp_path / "y/data.yaml").exists()
    with pytest.raises(ConfigError, match="unknown format"):
        export_benchmark(bench, tmp_path / "z", fmt="voc")
    with pytest.raises(ConfigError, match="protocol"):
        export_benchmark(bench, tmp_path / "z", protocol="generalized")
    (bench / "images/wood/img5.png").unlink()
    with pytest.raises(DataError, match="img5.png: benchmark image missing"):
        export_benchmark(bench, tmp_path / "z")
    assert not (tmp_path / "z").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
