"""Hand-written tiny benchmarks for the data-pipeline tests (COCO split JSONs + PNG/NPY images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toybench import annotation, category, write_rgb, write_splits

CATEGORIES = [category(1, "scratch", "steel", "metal"), category(2, "hole", "steel", "metal", "unseen"),
              category(3, "crack", "steel", "metal"), category(4, "short", "pcb", "electronics")]

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


def write_bench(root: Path, npy_channels: int | None = None) -> Path:
    """Write the 6-image benchmark; ``npy_channels`` stores every image as an ``(H, W, n)`` ``.npy`` instead."""
    images, anns = [], []
    for iid, file, w, h, scene, ch, objs in IMAGES:
        c = npy_channels or ch
        if npy_channels:
            file = file.replace(".png", ".npy")
        img = render(w, h, c, [o[1] for o in objs], seed=iid)
        if npy_channels:
            (root / file).parent.mkdir(parents=True, exist_ok=True)
            np.save(root / file, img)
        else:
            write_rgb(root / file, img[:, :, 0] if c == 1 else img)
        images.append({"id": iid, "file_name": file, "width": w, "height": h, "source": scene, "scene": scene,
                       "sha1": "0" * 40, "channels": c})
        anns += [annotation(len(anns) + 1 + k, iid, cat, box, morphology="round", polygon=poly)
                 for k, (cat, box, poly) in enumerate(objs)]
    ids = {i["id"] for i in images}
    has_unseen = {a["image_id"] for a in anns if a["category_id"] in UNSEEN}
    write_splits(root, CATEGORIES, images, anns, {  # closed_train holds every image here (val included)
        "closed_train": (ids, None),
        "closed_val": ({2, 6}, None),
        "open_train": (ids - has_unseen, lambda a: a["category_id"] not in UNSEEN),
        "open_val": (has_unseen, None),
    })
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
