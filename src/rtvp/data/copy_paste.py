"""Copy-paste of real defect instances: an instance bank per scene, and the paste itself.

A pasted instance is cut from its source image by its polygon mask (or its box when it has no segmentation),
optionally mirrored, and placed at a random spot of the target where it overlaps no existing instance by more than
``max_overlap`` (intersection over either area). Pixels under the mask are copied verbatim.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from rtvp.data.annotations import ImageEntry
from rtvp.data.transforms import Annotated, concat


class InstanceBank:
    """Every instance of a split, grouped by scene, for copy-paste.

    Args:
        entries: the split's images (instances already restricted to the allowed classes).
        min_side: instances with a side under this many original pixels are not banked.
    """

    def __init__(self, entries: list[ImageEntry], min_side: float = 4.0) -> None:
        groups = sorted({e.group for e in entries})
        self.group_of = np.array([groups.index(e.group) for e in entries], dtype=np.int64)
        img_idx, inst_idx = [], []
        for i, e in enumerate(entries):
            wh = e.boxes[:, 2:] - e.boxes[:, :2]
            ok = np.flatnonzero((wh >= min_side).all(1))
            img_idx.append(np.full(len(ok), i, dtype=np.int64))
            inst_idx.append(ok)
        self.image = np.concatenate(img_idx) if img_idx else np.zeros(0, np.int64)
        self.instance = np.concatenate(inst_idx) if inst_idx else np.zeros(0, np.int64)
        self.defect_free = np.array([len(e.boxes) == 0 for e in entries], dtype=bool)

    def __len__(self) -> int:
        return len(self.image)

    def draw(self, target: int, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
        """Up to ``n`` random ``(image index, instance index)`` pairs from ``target``'s scene, other images only."""
        cand = np.flatnonzero((self.group_of[self.image] == self.group_of[target]) & (self.image != target))
        if not len(cand):
            return []
        pick = rng.choice(cand, size=min(n, len(cand)), replace=False)
        return [(int(self.image[k]), int(self.instance[k])) for k in pick]


def instance_mask(src: Annotated, k: int, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """``(h, w)`` bool mask of instance ``k`` inside the crop at ``(x0, y0)`` (its polygons, else the full crop)."""
    if not src.polygonal[k]:
        return np.ones((h, w), dtype=bool)
    sel = src.owner == k
    pts, part = src.points[sel], src.part[sel]
    cuts = np.flatnonzero(np.diff(part)) + 1
    rings = [np.round((p - 0.5 - (x0, y0)) * 16).astype(np.int32) for p in np.split(pts, cuts)]
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(mask, rings, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool) if mask.any() else np.ones((h, w), dtype=bool)


def _free_spot(boxes: np.ndarray, w: int, h: int, width: int, height: int, rng: np.random.Generator,
               max_overlap: float, tries: int) -> tuple[int, int] | None:
    """First of ``tries`` random top-left corners whose box overlaps no existing box beyond ``max_overlap``."""
    xs = rng.integers(0, width - w + 1, tries)
    ys = rng.integers(0, height - h + 1, tries)
    if not len(boxes):
        return int(xs[0]), int(ys[0])
    cand = np.stack([xs, ys, xs + w, ys + h], 1).astype(np.float32)
    lt = np.maximum(cand[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(cand[:, None, 2:], boxes[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)  # (tries, N)
    area_old = np.maximum((boxes[:, 2:] - boxes[:, :2]).prod(1), 1e-6)
    over = np.maximum(inter / area_old[None], inter / float(w * h)).max(1)
    ok = np.flatnonzero(over < max_overlap)
    return (int(xs[ok[0]]), int(ys[ok[0]])) if len(ok) else None


def paste(target: Annotated, src: Annotated, k: int, rng: np.random.Generator, max_overlap: float = 0.3,
          tries: int = 16, mirror: bool | None = None) -> Annotated:
    """Paste instance ``k`` of ``src`` into ``target`` (same channel count, same pixel scale).

    Args:
        target: image receiving the instance; its array is copied, never written in place.
        src: source image and instances.
        k: index of the instance in ``src``.
        rng: random generator (placement, mirroring).
        max_overlap: largest allowed intersection over the area of any existing box or of the pasted box.
        tries: candidate placements drawn at once.
        mirror: force (True/False) or randomise (None) a left-right mirror of the pasted instance.

    Returns:
        ``target`` with the instance added (unchanged when it does not fit anywhere).
    """
    height, width = target.hw
    sh, sw = src.hw
    bx = src.boxes[k]
    x0, y0 = int(np.floor(bx[0])), int(np.floor(bx[1]))
    x1, y1 = min(int(np.ceil(bx[2])), sw), min(int(np.ceil(bx[3])), sh)
    w, h = x1 - x0, y1 - y0
    if w < 2 or h < 2 or w > width or h > height:
        return target
    spot = _free_spot(target.boxes, w, h, width, height, rng, max_overlap, tries)
    if spot is None:
        return target
    crop, mask = src.image[y0:y1, x0:x1], instance_mask(src, k, x0, y0, w, h)
    sel = src.owner == k
    inst = Annotated(image=crop, boxes=src.boxes[k : k + 1].copy(), labels=src.labels[k : k + 1].copy(),
                     points=src.points[sel].copy(), owner=np.zeros(int(sel.sum()), np.int64),
                     part=src.part[sel] - src.part[sel].min(), polygonal=src.polygonal[k : k + 1].copy())
    if mirror if mirror is not None else rng.random() < 0.5:
        crop, mask = crop[:, ::-1], mask[:, ::-1]
        inst.boxes[:, [0, 2]] = (x0 + x1) - inst.boxes[:, [2, 0]]
        inst.points[:, 0] = (x0 + x1) - inst.points[:, 0]
    dx, dy = spot[0] - x0, spot[1] - y0
    d = np.array([dx, dy], dtype=np.float32)
    inst = replace(inst, boxes=inst.boxes + np.tile(d, 2), points=inst.points + d)
    img = target.image.copy()
    region = img[spot[1] : spot[1] + h, spot[0] : spot[0] + w]
    np.copyto(region, crop, where=mask[:, :, None])
    return concat([target, inst], img)
