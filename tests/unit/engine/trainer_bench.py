"""A hand-made 10-image benchmark (CONTRACTS.md layout) for the trainer's integration tests.

Three classes drawn as solid rectangles of a class-specific colour on dark noise ("scratch" red, "hole" green,
"spot" blue); "hole" is the unseen class. 64x64 RGB PNGs, one defect-free image.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

CATEGORIES = [
    {"id": 1, "name": "scratch on steel", "defect": "scratch", "scene": "steel", "supercategory": "metal",
     "text": "scratch on steel", "aliases": [], "split": "seen"},
    {"id": 2, "name": "hole on steel", "defect": "hole", "scene": "steel", "supercategory": "metal",
     "text": "hole on steel", "aliases": [], "split": "unseen"},
    {"id": 3, "name": "spot on wood", "defect": "spot", "scene": "wood", "supercategory": "wood",
     "text": "spot on wood", "aliases": [], "split": "seen"},
]
COLORS = {1: (255, 40, 40), 2: (40, 255, 40), 3: (40, 40, 255)}  # RGB
# (id, [(category_id, (x1, y1, x2, y2))])
IMAGES = [
    (1, [(1, (8, 8, 30, 24))]),
    (2, [(3, (30, 30, 56, 52))]),
    (3, [(1, (36, 6, 60, 20)), (3, (6, 36, 26, 58))]),
    (4, []),
    (5, [(2, (10, 10, 34, 34))]),
    (6, [(3, (4, 4, 22, 22)), (1, (34, 40, 60, 56))]),
    (7, [(2, (30, 8, 54, 30)), (1, (6, 40, 30, 58))]),
    (8, [(1, (20, 20, 44, 40))]),
    (9, [(3, (16, 6, 40, 30))]),
    (10, [(3, (8, 30, 32, 56)), (1, (36, 10, 58, 26))]),
]
CLOSED_VAL = {3, 7}
SIZE = 64


def write_bench(root: Path) -> Path:
    """Write images and the four annotation files under ``root``; returns ``root``."""
    images, anns = [], []
    for iid, objs in IMAGES:
        img = np.random.default_rng(iid).integers(0, 50, (SIZE, SIZE, 3), dtype=np.uint8)
        for cat, (x1, y1, x2, y2) in objs:
            img[y1:y2, x1:x2] = COLORS[cat]
        file = f"images/toy/{iid:03d}.png"
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / file), img[:, :, ::-1])
        images.append({"id": iid, "file_name": file, "width": SIZE, "height": SIZE, "source": "toy",
                       "scene": "steel", "sha1": f"{iid:040d}", "channels": 3})
        for cat, (x1, y1, x2, y2) in objs:
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cat,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                         "segmentation": [], "attributes": {"location": "center", "size": "small",
                                                            "morphology": "irregular"}})
    unseen_imgs = {a["image_id"] for a in anns if a["category_id"] == 2}
    all_ids = {i["id"] for i in images}
    splits = {
        "closed_train": (all_ids - CLOSED_VAL, lambda a: True),
        "closed_val": (CLOSED_VAL, lambda a: True),
        "open_train": (all_ids - CLOSED_VAL - unseen_imgs, lambda a: a["category_id"] != 2),
        "open_val": (unseen_imgs | CLOSED_VAL, lambda a: True),
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for name, (ids, keep) in splits.items():
        coco = {"images": [i for i in images if i["id"] in ids],
                "annotations": [a for a in anns if a["image_id"] in ids and keep(a)], "categories": CATEGORIES}
        (root / "annotations" / f"{name}.json").write_text(json.dumps(coco))
    return root
