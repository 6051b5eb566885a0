"""Hand-written tiny benchmarks for the data-pipeline tests (COCO JSONs per CONTRACTS.md + PNG/NPY images)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

CATEGORIES = [
    {"id": 1, "name": "scratch on steel", "defect": "scratch", "scene": "steel", "supercategory": "metal",
     "text": "scratch on steel", "aliases": [], "split": "seen"},
    {"id": 2, "name": "hole on steel", "defect": "hole", "scene": "steel", "supercategory": "metal",
     "text": "hole on steel", "aliases": [], "split": "unseen"},
    {"id": 3, "name": "crack on steel", "defect": "crack", "scene": "steel", "supercategory": "metal",
     "text": "crack on steel", "aliases": [], "split": "seen"},
    {"id": 4, "name": "short on pcb", "defect": "short", "scene": "pcb", "supercategory": "electronics",
     "text": "short on pcb", "aliases": [], "split": "seen"},
]

# (id, file, width, height, scene, channels, [(category_id, (x1, y1, x2, y2), polygon?)])
IMAGES = [
    (1, "images/src/a.png", 96, 64, "steel", 3, [(1, (20, 10, 50, 30), True)]),
    (2, "images/src/gray.png", 64, 64, "steel", 1, [(2, (8, 30, 24, 50), False)]),
    (3, "images/src/empty.png", 80, 80, "steel", 3, []),
    (4, "images/src/b.png", 64, 96, "steel", 3, [(1, (5, 5, 25, 20), False), (3, (30, 50, 60, 90), True)]),
    (5, "images/pcb/c.png", 100, 50, "pcb", 3, [(4, (10, 10, 30, 30), False)]),
    (6, "images/pcb/d.png", 64, 64, "pcb", 3, [(4, (4, 4, 20, 20), False), (2, (40, 40, 60, 60), False)]),
]
UNSEEN = {2}


def render(w: int, h: int, c: int, rects: list[tuple[float, ...]], seed: int) -> np.ndarray:
    """Dark noise (0..60) with white (255) rectangles; ``(h, w, c)`` uint8."""
    img = np.random.default_rng(seed).integers(0, 60, (h, w, c), dtype=np.uint8)
    for x1, y1, x2, y2 in rects:
        img[int(y1) : int(y2), int(x1) : int(x2)] = 255
    return img


def _annotation(aid: int, image_id: int, cat: int, box: tuple[float, ...], poly: bool) -> dict:
    x1, y1, x2, y2 = box
    seg = [[x1, y1, x2, y1, x2, y2, x1, y2]] if poly else []
    return {"id": aid, "image_id": image_id, "category_id": cat, "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": (x2 - x1) * (y2 - y1), "iscrowd": 0, "segmentation": seg,
            "attributes": {"location": "center", "size": "small", "morphology": "round"}}


def write_bench(root: Path, npy_channels: int | None = None) -> Path:
    """Write the 6-image benchmark; ``npy_channels`` stores every image as an ``(H, W, n)`` ``.npy`` instead."""
    images, anns = [], []
    for iid, file, w, h, scene, ch, objs in IMAGES:
        c = npy_channels or ch
        if npy_channels:
            file = file.replace(".png", ".npy")
        img = render(w, h, c, [o[1] for o in objs], seed=iid)
        path = root / file
        path.parent.mkdir(parents=True, exist_ok=True)
        if npy_channels:
            np.save(path, img)
        else:
            cv2.imwrite(str(path), img[:, :, 0] if c == 1 else img[:, :, ::-1])
        images.append({"id": iid, "file_name": file, "width": w, "height": h, "source": scene, "scene": scene,
                       "sha1": "0" * 40, "channels": c})
        for cat, box, poly in objs:
            anns.append((iid, _annotation(len(anns) + 1, iid, cat, box, poly)))
    has_unseen = {iid for iid, a in anns if a["category_id"] in UNSEEN}
    splits = {
        "closed_train": ({i["id"] for i in images}, None),
        "closed_val": ({2, 6}, None),
        "open_train": ({i["id"] for i in images} - has_unseen, lambda a: a["category_id"] not in UNSEEN),
        "open_val": (has_unseen, None),
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for name, (ids, keep) in splits.items():
        coco = {"images": [i for i in images if i["id"] in ids],
                "annotations": [a for iid, a in anns if iid in ids and (keep is None or keep(a))],
                "categories": CATEGORIES}
        (root / "annotations" / f"{name}.json").write_text(json.dumps(coco))
    return root


@pytest.fixture(scope="session")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mixed RGB / grayscale PNG benchmark (6 images, 4 classes, 1 unseen, 1 defect-free image)."""
    return write_bench(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="session")
def bench4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same benchmark stored as 4-channel ``.npy`` images."""
    return write_bench(tmp_path_factory.mktemp("bench4"), npy_channels=4)


def _white_box(img: np.ndarray, thresh: int = 200) -> np.ndarray:
    """xyxy bounds of the pixels brighter than ``thresh`` in every channel (exclusive x2/y2)."""
    ys, xs = np.nonzero(img.min(axis=2) > thresh)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


@pytest.fixture(scope="session")
def white_box():
    """Function ``img (H, W, C) -> xyxy`` bounding the white pixels."""
    return _white_box


@pytest.fixture(scope="session")
def renderer():
    """Function ``(w, h, c, rects, seed) -> image`` drawing white rectangles on dark noise."""
    return render
