"""Shared writer of hand-made toy benchmarks (benchmark.yaml + annotations/<split>.json + images/) for the test folders.

Each test area keeps its own image layout (what the tests' hand-computed expectations are about); this module holds
what they have in common: category and annotation records, the colour-rectangle renderer and the four COCO split
files. Importable as ``toybench`` because ``tests/`` (where the root conftest lives) is on ``sys.path``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
Keep = Callable[[dict[str, Any]], bool]


def category(cid: int, defect: str, scene: str, supercategory: str, split: str = "seen") -> dict[str, Any]:
    """One category record; its name and text are ``"<defect> on <scene>"``."""
    name = f"{defect} on {scene}"
    return {"id": cid, "name": name, "defect": defect, "scene": scene, "supercategory": supercategory,
            "text": name, "aliases": [], "split": split}


STEEL_WOOD = [category(1, "scratch", "steel", "metal"), category(2, "hole", "steel", "metal", "unseen"),
              category(3, "spot", "wood", "wood")]
"""Three classes over two scenes; "hole on steel" is unseen (trainer and annotation toys)."""
COLORS = {1: (255, 40, 40), 2: (40, 255, 40), 3: (40, 40, 255)}
"""RGB colour of each ``STEEL_WOOD`` class in :func:`render_colored`."""


def annotation(aid: int, image_id: int, cat: int, box: Box, *, size: str = "small",
               morphology: str = "irregular", polygon: bool = False) -> dict[str, Any]:
    """A COCO annotation of the xyxy ``box`` (its rectangle as the polygon when ``polygon``)."""
    x1, y1, x2, y2 = box
    seg = [[x1, y1, x2, y1, x2, y2, x1, y2]] if polygon else []
    return {"id": aid, "image_id": image_id, "category_id": cat, "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": (x2 - x1) * (y2 - y1), "iscrowd": 0, "segmentation": seg,
            "attributes": {"location": "center", "size": size, "morphology": morphology}}


def render_colored(seed: int, size: int, objs: Iterable[tuple[int, Box]]) -> np.ndarray:
    """Dark noise (0..49, seeded) with each ``(category, box)`` filled in its ``COLORS`` colour; ``(H, W, 3)`` RGB."""
    img = np.random.default_rng(seed).integers(0, 50, (size, size, 3), dtype=np.uint8)
    for cat, (x1, y1, x2, y2) in objs:
        img[int(y1) : int(y2), int(x1) : int(x2)] = COLORS[cat]
    return img


def write_rgb(path: Path, img: np.ndarray) -> None:
    """Write an RGB ``(H, W, 3)`` (or gray ``(H, W)``) uint8 image, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img if img.ndim == 2 else img[:, :, ::-1])


def standard_splits(image_ids: Iterable[int], anns: list[dict[str, Any]], val: set[int],
                    unseen: set[int]) -> dict[str, tuple[set[int], Keep | None]]:
    """The builder's split rule in small: closed = train/val; open_train drops every image holding an unseen class.

    Returns:
        ``{split: (image ids, annotation filter or None)}`` for :func:`write_splits`.
    """
    ids = set(image_ids)
    with_unseen = {a["image_id"] for a in anns if a["category_id"] in unseen}
    return {"closed_train": (ids - val, None), "closed_val": (val, None),
            "open_train": (ids - val - with_unseen, lambda a: a["category_id"] not in unseen),
            "open_val": (with_unseen | val, None)}


def write_splits(root: Path, categories: list[dict[str, Any]], images: list[dict[str, Any]],
                 anns: list[dict[str, Any]], splits: dict[str, tuple[set[int], Keep | None]]) -> None:
    """Write ``root/annotations/<split>.json`` for every split (images in the given order)."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for name, (ids, keep) in splits.items():
        coco = {"info": {"split": name}, "categories": categories,
                "images": [i for i in images if i["id"] in ids],
                "annotations": [a for a in anns if a["image_id"] in ids and (keep is None or keep(a))]}
        (root / "annotations" / f"{name}.json").write_text(json.dumps(coco))
