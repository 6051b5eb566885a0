"""A hand-made 5-image benchmark (2 scenes, 3 classes, 1 defect-free image) shared by the stats/export tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import yaml

CATEGORIES = [
    {"id": 1, "name": "scratch on metal", "defect": "scratch", "scene": "metal", "supercategory": "surface",
     "text": "scratch on metal", "aliases": [], "split": "seen"},
    {"id": 2, "name": "hole on metal", "defect": "hole", "scene": "metal", "supercategory": "surface",
     "text": "hole on metal", "aliases": [], "split": "seen"},
    {"id": 3, "name": "crack on wood", "defect": "crack", "scene": "wood", "supercategory": "surface",
     "text": "crack on wood", "aliases": [], "split": "unseen"},
]
# image id -> (scene, width, height, closed split)
IMAGES = {1: ("metal", 200, 100, "train"), 2: ("metal", 200, 100, "train"), 3: ("wood", 64, 48, "train"),
          4: ("metal", 200, 100, "val"), 5: ("wood", 64, 48, "val")}
# (id, image_id, category_id, bbox, size)
ANNOTATIONS = [
    (1, 1, 1, [0.0, 0.0, 100.0, 5.0], "small"),
    (2, 1, 2, [50.0, 50.0, 40.0, 40.0], "medium"),
    (3, 2, 1, [10.0, 0.0, 100.0, 100.0], "large"),
    (4, 3, 3, [0.0, 0.0, 20.0, 20.0], "small"),
    (5, 4, 2, [190.0, 90.0, 10.0, 10.0], "small"),
]


def write_tiny_bench(root: Path) -> Path:
    """Write the benchmark under ``root / 'bench'`` (real PNG files behind every image) and return its path."""
    bench = root / "bench"
    images = {}
    for iid, (scene, w, h, _) in IMAGES.items():
        rel = f"images/{scene}/img{iid}.png"
        (bench / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(bench / rel), np.full((h, w, 3), 40 * iid, np.uint8))
        images[iid] = {"id": iid, "file_name": rel, "width": w, "height": h, "source": scene, "scene": scene,
                       "sha1": f"{iid:040d}", "channels": 3}
    anns = {
        aid: {"id": aid, "image_id": iid, "category_id": cid, "bbox": box, "area": box[2] * box[3], "iscrowd": 0,
              "segmentation": [], "attributes": {"location": "center", "size": size, "morphology": "irregular"}}
        for aid, iid, cid, box, size in ANNOTATIONS
    }
    unseen_imgs = {a["image_id"] for a in anns.values() if a["category_id"] == 3}
    splits = {
        "closed_train": [i for i, v in IMAGES.items() if v[3] == "train"],
        "closed_val": [i for i, v in IMAGES.items() if v[3] == "val"],
        "open_train": [i for i, v in IMAGES.items() if v[3] == "train" and i not in unseen_imgs],
        "open_val": sorted(unseen_imgs | {i for i, v in IMAGES.items() if v[3] == "val"}),
    }
    (bench / "annotations").mkdir(parents=True)
    for name, ids in splits.items():
        keep = [a for a in anns.values() if a["image_id"] in ids and (name != "open_train" or a["category_id"] != 3)]
        data = {"images": [images[i] for i in ids], "annotations": keep, "categories": CATEGORIES}
        (bench / "annotations" / f"{name}.json").write_text(json.dumps(data))
    (bench / "benchmark.yaml").write_text(yaml.safe_dump({"name": "tiny", "version": "0.1"}))
    return bench
