"""Writers of tiny native dataset layouts (one per source format) shared by the source tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from rtvp.structures import ImageRecord


def write_image(path: Path, width: int, height: int, channels: int = 3, value: int = 90) -> Path:
    """Write a flat ``width x height`` image (format from the suffix), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (height, width) if channels == 1 else (height, width, channels)
    assert cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


def write_mask(path: Path, mask: np.ndarray) -> Path:
    """Write a uint8 grey mask as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask.astype(np.uint8))
    return path


def deeppcb(root: Path, labels: dict[str, str], splits: dict[str, str] | None = None, group: str = "00001") -> Path:
    """DeepPCB layout: ``PCBData/group<G>/<G>/<id>_{test,temp}.jpg`` + ``<G>_not/<id>.txt`` + split lists."""
    pcb = root / "PCBData"
    for pid, text in labels.items():
        write_image(pcb / f"group{group}" / group / f"{pid}_test.jpg", 64, 48, 1)
        write_image(pcb / f"group{group}" / group / f"{pid}_temp.jpg", 64, 48, 1)
        lab = pcb / f"group{group}" / f"{group}_not" / f"{pid}.txt"
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text(text)
    for split in ("trainval", "test"):
        lines = [f"group{group}/{group}/{pid}.jpg group{group}/{group}_not/{pid}.txt"
                 for pid, s in (splits or {}).items() if s == split]
        (pcb / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def voc_xml(filename: str, objects: list[tuple[str, tuple[float, float, float, float]]]) -> str:
    """A Pascal VOC XML string with the given ``(name, (xmin, ymin, xmax, ymax))`` objects."""
    objs = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
    return (f"<annotation><folder>x</folder><filename>{filename}</filename><size><width>1</width>"
            f"<height>1</height><depth>1</depth></size>{objs}</annotation>")


def labelme_json(image_path: str, shapes: list[dict]) -> str:
    """A labelme 4.x JSON string (with junk ``imageData`` that must be ignored)."""
    return json.dumps({"version": "4.5.6", "flags": {}, "shapes": shapes, "imagePath": image_path,
                       "imageData": "bm90IGFuIGltYWdl", "imageHeight": 1, "imageWidth": 1})


def polygon_shape(label: str, points: list[list[float]], kind: str = "polygon") -> dict:
    """One labelme shape."""
    return {"label": label, "points": points, "group_id": None, "shape_type": kind, "flags": {}}


def write_mat(path: Path, seg: np.ndarray) -> Path:
    """A CrackForest ``groundTruth`` .mat (struct with Segmentation and Boundaries)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"groundTruth": {"Segmentation": seg.astype(np.uint8),
                                                 "Boundaries": np.zeros_like(seg, np.uint8)}})
    return path


def minimal(fmt: str, root: Path) -> tuple[dict, Path]:
    """Write a valid one-image layout of ``fmt`` under ``root``; return ``(options, the label file)``."""
    if fmt == "deeppcb":
        deeppcb(root, {"00001000": "1 2 10 12 1\n"}, {"00001000": "test"})
        return {}, root / "PCBData/group00001/00001_not/00001000.txt"
    if fmt == "voc":
        write_image(root / "IMAGES/a_1.jpg", 20, 20)
        lab = root / "ANNOTATIONS/a_1.xml"
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text(voc_xml("a_1", [("scratch", (1, 2, 5, 6))]))
        return {"images": "IMAGES", "annotations": "ANNOTATIONS"}, lab
    if fmt == "mask_folders":
        write_image(root / "MT_Crack/Imgs/a.jpg", 16, 12, 1)
        mask = np.zeros((12, 16), np.uint8)
        mask[2:5, 3:9] = 255
        return {}, write_mask(root / "MT_Crack/Imgs/a.png", mask)
    if fmt == "labelme":
        write_image(root / "data/a.jpg", 30, 20)
        lab = root / "label/a.json"
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text(labelme_json("a.jpg", [polygon_shape("Pitting", [[1, 1], [9, 2], [5, 8]])]))
        return {"images": "data", "labels": "label"}, lab
    if fmt == "crackforest":
        write_image(root / "image/001.jpg", 24, 16)
        seg = np.ones((16, 24), np.uint8)
        seg[5, 2:20] = 2
        return {}, write_mat(root / "groundTruth/001.mat", seg)
    if fmt == "coco":
        write_image(root / "images/a.png", 20, 10)
        data = {"images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 10}],
                "categories": [{"id": 3, "name": "dent"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 0,
                                 "area": 12, "segmentation": [[1, 2, 4, 2, 4, 6]]}]}
        lab = root / "annotations.json"
        lab.write_text(json.dumps(data))
        return {}, lab
    if fmt == "yolo":
        write_image(root / "images/train/a.jpg", 40, 20)
        lab = root / "labels/train/a.txt"
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text("0 0.5 0.5 0.25 0.5\n")
        return {"names": ["hole"]}, lab
    raise KeyError(fmt)


def assert_valid_record(rec: ImageRecord) -> None:
    """The invariants every converter's output satisfies (whatever the label content was)."""
    assert isinstance(rec, ImageRecord)
    assert rec.path.is_absolute()
    assert isinstance(rec.width, int) and isinstance(rec.height, int) and rec.width >= 0 and rec.height >= 0
    assert isinstance(rec.source, str) and rec.source
    json.dumps(rec.meta)  # JSON-serialisable
    if rec.meta.get("issues"):
        assert all(isinstance(s, str) and s for s in rec.meta["issues"])
    for ann in rec.annotations:
        assert len(ann.bbox) == 4 and all(isinstance(v, float) and math.isfinite(v) for v in ann.bbox)
        assert isinstance(ann.label, str) and ann.label
        seg = ann.segmentation
        if isinstance(seg, list):
            assert all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg)
            assert all(isinstance(v, float) and math.isfinite(v) for p in seg for v in p)
        elif seg is not None:
            assert isinstance(seg, dict) and len(seg["size"]) == 2 and "counts" in seg
