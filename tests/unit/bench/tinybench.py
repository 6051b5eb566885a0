"""A hand-made 5-image benchmark (2 scenes, 3 classes, 1 defect-free image) shared by the stats/export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from toybench import annotation, category, standard_splits, write_rgb, write_splits

CATEGORIES = [category(1, "scratch", "metal", "surface"), category(2, "hole", "metal", "surface"),
              category(3, "crack", "wood", "surface", "unseen")]
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
    images = []
    for iid, (scene, w, h, _) in IMAGES.items():
        rel = f"images/{scene}/img{iid}.png"
        write_rgb(bench / rel, np.full((h, w, 3), 40 * iid, np.uint8))
        images.append({"id": iid, "file_name": rel, "width": w, "height": h, "source": scene, "scene": scene,
                       "sha1": f"{iid:040d}", "channels": 3})
    anns = [annotation(aid, iid, cid, (x, y, x + w, y + h), size=size)
            for aid, iid, cid, (x, y, w, h), size in ANNOTATIONS]
    val = {i for i, v in IMAGES.items() if v[3] == "val"}
    write_splits(bench, CATEGORIES, images, anns, standard_splits(IMAGES, anns, val, {3}))
    (bench / "benchmark.yaml").write_text(yaml.safe_dump({"name": "tiny", "version": "0.1"}))
    return bench
