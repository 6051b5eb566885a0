"""Writers of tiny user datasets as exported by Roboflow / CVAT / Ultralytics: a YOLO data YAML, a COCO JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

NAMES = ["pitted_surface", "scratch"]


def _image(path: Path, seed: int, size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def write_yolo(root: Path, counts: dict[str, int] | None = None, names: list[str] | None = None) -> Path:
    """``root/data.yaml`` with ``images/<split>/*.png`` and ``labels/<split>/*.txt`` (one box per image)."""
    counts = counts or {"train": 6, "val": 2}
    names = names or NAMES
    seed = 0
    for split, n in counts.items():
        for i in range(n):
            _image(root / "images" / split / f"{split}{i}.png", seed := seed + 1)
            label = root / "labels" / split / f"{split}{i}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(f"{i % len(names)} 0.5 0.5 0.4 0.3\n")
    lines = ["path: ."] + [f"{s}: images/{s}" for s in counts] + [f"names: {json.dumps(names)}"]
    (root / "data.yaml").write_text("\n".join(lines) + "\n")
    return root / "data.yaml"


def write_coco(root: Path, split: str = "train", n: int = 6, images_dir: str = "images") -> Path:
    """``root/annotations/instances_<split>.json`` over ``root/<images_dir>/<split>/*.png``."""
    images, anns = [], []
    for i in range(n):
        name = f"{split}/{split}{i}.png"
        _image(root / images_dir / name, 100 + i + (0 if split == "train" else 50))
        images.append({"id": i + 1, "file_name": name, "width": 64, "height": 64})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 7 + i % 2, "bbox": [16, 20, 24, 18],
                     "area": 432, "iscrowd": 0})
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 7, "name": "pitted_surface"}, {"id": 8, "name": "Scratch"}]}
    path = root / "annotations" / f"instances_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path
