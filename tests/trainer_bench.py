"""A hand-made 10-image benchmark (benchmark.yaml + annotations/ + images/) for the trainer's integration tests.

Three classes drawn as solid rectangles of a class-specific colour on dark noise ("scratch" red, "hole" green,
"spot" blue); "hole" is the unseen class. 64x64 RGB PNGs, one defect-free image.
"""

from __future__ import annotations

from pathlib import Path

from toybench import STEEL_WOOD, annotation, render_colored, standard_splits, write_rgb, write_splits

CATEGORIES = STEEL_WOOD
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
        file = f"images/toy/{iid:03d}.png"
        write_rgb(root / file, render_colored(iid, SIZE, objs))
        images.append({"id": iid, "file_name": file, "width": SIZE, "height": SIZE, "source": "toy",
                       "scene": "steel", "sha1": f"{iid:040d}", "channels": 3})
        anns += [annotation(len(anns) + 1 + k, iid, cat, box) for k, (cat, box) in enumerate(objs)]
    write_splits(root, CATEGORIES, images, anns, standard_splits([i for i, _ in IMAGES], anns, CLOSED_VAL, {2}))
    return root
