"""Read one benchmark split (COCO JSON, metadata only) into per-image numpy records.

Outlines: every instance carries a set of outline points used by the geometric augmentations (boxes are re-derived
from the transformed points, so a rotated polygon keeps a tight box) and by copy-paste (the polygon is the paste
mask). Instances without segmentation get their 4 box corners. Points of all instances of an image are stored flat:
``points (T, 2)``, ``owner (T,)`` (instance index, non-decreasing) and ``part (T,)`` (polygon index; consecutive
points with the same part form one closed polygon).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.data.masks import densify_ring
from rtvp.errors import DataError
from rtvp.fileio import read_json
from rtvp.masks import rle_polygons


@dataclass
class ImageEntry:
    """One image of a split with its instances in original pixels.

    Attributes:
        id: benchmark image id.
        path: absolute image path.
        width: original width.
        height: original height.
        channels: stored channel count from the JSON (``None`` when the field is absent).
        group: scene (or source) name; copy-paste only moves instances within a group.
        boxes: ``(N, 4)`` float32 xyxy.
        labels: ``(N,)`` int64 category index (0-based position in the sorted categories).
        points: ``(T, 2)`` float32 outline points (polygon vertices or box corners).
        owner: ``(T,)`` int64 instance index of each point.
        part: ``(T,)`` int64 polygon index of each point.
        polygonal: ``(N,)`` bool, True when the outline is a real polygon (not box corners).
    """

    id: int
    path: Path
    width: int
    height: int
    channels: int | None
    group: str
    boxes: np.ndarray
    labels: np.ndarray
    points: np.ndarray
    owner: np.ndarray
    part: np.ndarray
    polygonal: np.ndarray


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy -> ``(N * 4, 2)`` corners (tl, tr, br, bl per box)."""
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    return np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x2, y2], 1), np.stack([x1, y2], 1)],
                    1).reshape(-1, 2).astype(np.float32)


def _rle_polygons(seg: dict[str, Any], h: int, w: int) -> list[np.ndarray]:
    """Outer contours of an RLE mask as polygons through pixel centres."""
    return [p.astype(np.float32) + 0.5 for p in rle_polygons(seg, h, w)]


def _polygons(seg: Any, h: int, w: int, where: str, step: float = 0.0) -> list[np.ndarray]:
    """COCO segmentation (polygon list or RLE dict) -> list of ``(P, 2)`` float32 polygons (may be empty).

    With ``step > 0`` every ring is densified to points at most ``step`` pixels apart (mask targets).
    """
    if not seg:
        return []
    try:
        if isinstance(seg, dict):
            rings = _rle_polygons(seg, h, w)
        else:
            rings = [np.asarray(p, dtype=np.float32).reshape(-1, 2) for p in seg if len(p) >= 6 and len(p) % 2 == 0]
        return [densify_ring(r, step) for r in rings] if step > 0 else rings
    except (TypeError, ValueError, KeyError) as e:
        raise DataError(f"{where}: malformed 'segmentation' ({e}); expected COCO polygons or an RLE dict") from e


def _outlines(boxes: np.ndarray, polys: list[list[np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Flat outline arrays ``(points, owner, part, polygonal)`` of one image's instances (init-time, per image)."""
    pts, owner, part, polygonal, n_parts = [], [], [], [], 0
    corners = box_corners(boxes).reshape(-1, 4, 2)
    for i, inst in enumerate(polys):
        rings = inst if inst else [corners[i]]
        for ring in rings:
            pts.append(ring)
            owner.append(np.full(len(ring), i, dtype=np.int64))
            part.append(np.full(len(ring), n_parts, dtype=np.int64))
            n_parts += 1
        polygonal.append(bool(inst))
    if not pts:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    return (np.concatenate(pts).astype(np.float32), np.concatenate(owner), np.concatenate(part),
            np.asarray(polygonal, dtype=bool))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        avail = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        raise DataError(f"{path}: split file not found (available splits: {avail or 'none'}); "
                        "build the benchmark with `rtvp data build` or pass an existing split name")
    data = read_json(path, "split file", fix="rebuild the benchmark with `rtvp data build`")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: missing COCO list '{key}'")
    return data


def _field(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise DataError(f"{where}: missing field '{key}'")
    return obj[key]


def _seen_mask(cats: list[dict[str, Any]], path: Path) -> np.ndarray:
    """``(C,)`` bool, True for ``split == "seen"``; every category must carry ``split``."""
    missing = [c["id"] for c in cats if c.get("split") not in ("seen", "unseen")]
    if missing:
        raise DataError(f"{path}: categories {missing[:5]} have no 'split' (seen|unseen), which the open protocol "
                        "needs; rebuild the benchmark")
    return np.array([c["split"] == "seen" for c in cats], dtype=bool)


def load_split(path: Path, bench: Path, seen_only: bool, with_polygons: bool, densify: int = 0
               ) -> tuple[list[dict[str, Any]], list[ImageEntry], int, np.ndarray]:
    """Read a COCO split file.

    Args:
        path: the ``annotations/<split>.json`` file.
        bench: benchmark root (``file_name`` is relative to it).
        seen_only: keep only categories with ``split == "seen"`` (others' annotations are dropped).
        with_polygons: parse segmentation into outline polygons (else every outline is the box corners).
        densify: when > 0, polygon rings get a point every ``long side / densify`` pixels (mask targets; see
            ``rtvp.data.masks``).

    Returns:
        ``(categories sorted by id, entries in image-id order, number of dropped annotations, keep (C,) bool)``.
    """
    data = _read_json(path)
    cats = sorted(data["categories"], key=lambda c: _field(c, "id", f"{path}: category {c}"))
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    keep = _seen_mask(cats, path) if seen_only else np.ones(len(cats), dtype=bool)
    per_image: dict[int, list[dict[str, Any]]] = {}
    for k, ann in enumerate(data["annotations"]):
        per_image.setdefault(_field(ann, "image_id", f"{path}: annotation #{k}"), []).append(ann)
    images = sorted(data["images"], key=lambda im: _field(im, "id", f"{path}: image {im}"))
    known = {im["id"] for im in images}
    orphans = set(per_image) - known
    if orphans:
        raise DataError(f"{path}: annotations refer to unknown image_id(s) {sorted(orphans)[:5]}")
    entries, dropped = [], 0
    for im in images:
        where = f"{path}: image id={im['id']}"
        w, h = int(_field(im, "width", where)), int(_field(im, "height", where))
        boxes, labels, polys = [], [], []
        for ann in per_image.get(im["id"], []):
            awhere = f"{path}: annotation id={ann.get('id')}"
            ci = cat_index.get(_field(ann, "category_id", awhere))
            if ci is None:
                raise DataError(f"{awhere}: category_id {ann['category_id']} is not in 'categories'")
            bbox = _field(ann, "bbox", awhere)
            if not (isinstance(bbox, list) and len(bbox) == 4):
                raise DataError(f"{awhere}: 'bbox' must be [x, y, w, h], got {bbox!r}")
            x, y, bw, bh = (float(v) for v in bbox)
            x1, y1, x2, y2 = max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)
            if ann.get("iscrowd", 0) or x2 - x1 <= 0 or y2 - y1 <= 0 or not keep[ci]:
                dropped += 1
                continue
            boxes.append((x1, y1, x2, y2))
            labels.append(ci)
            step = max(w, h) / densify if densify > 0 else 0.0
            polys.append(_polygons(ann.get("segmentation"), h, w, awhere, step) if with_polygons else [])
        box_arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        pts, owner, part, polygonal = _outlines(box_arr, polys)
        entries.append(ImageEntry(
            id=int(im["id"]), path=bench / _field(im, "file_name", where), width=w, height=h,
            channels=im.get("channels"), group=str(im.get("scene") or im.get("source") or ""),
            boxes=box_arr, labels=np.asarray(labels, dtype=np.int64), points=pts, owner=owner, part=part,
            polygonal=polygonal))
    return cats, entries, dropped, keep
