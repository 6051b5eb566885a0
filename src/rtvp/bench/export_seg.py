"""Polygon label lines for the Ultralytics segment format (``rtvp data export --format yolo-seg``).

One line per instance: ``cls x1 y1 x2 y2 ...``, coordinates normalised to [0, 1] by the image size (6 decimals).
Ultralytics reads exactly one polygon per line, so:

- an instance made of several polygons (a crack broken in pieces) is written as one polygon that visits each piece
  and returns along the same straight line (a zero-area bridge): ``fillPoly`` of the line covers the union of the
  pieces plus the one-pixel bridges. Ultralytics' own COCO converter joins pieces the same way.
- an RLE ``segmentation`` is decoded and traced with ``cv2.findContours`` (outer contours).
- an instance without a ``segmentation`` (box-only) is written as its box's rectangle: the segment format has no
  per-instance "no mask" flag, and one box line in a polygon file would be misread as a two-point polygon. rtvp's own
  training never does this (box-only instances get no mask loss); the rectangle is a limit of the export format.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtvp.errors import DataError
from rtvp.masks import rle_polygons


def instance_polygons(ann: dict[str, Any], height: int, width: int) -> list[np.ndarray]:
    """The pixel-coordinate polygons ``[(K, 2)]`` of one COCO annotation; its box rectangle when it has none."""
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        polys = rle_polygons(seg, height, width)
    elif isinstance(seg, list):
        polys = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in seg if len(p) >= 6 and len(p) % 2 == 0]
    else:
        polys = []
    if not polys:
        x, y, w, h = (float(v) for v in ann["bbox"][:4])
        polys = [np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])]
    return polys


def bridge(polygons: list[np.ndarray]) -> np.ndarray:
    """Join polygons into one closed ring that covers their union.

    The ring is ``P1, P1[0], P2, P2[0], ..., Pn, Pn[0]``, then back over ``P(n-1)[0] ... P2[0]`` (its closing edge
    ends at ``P1[0]``). Each piece is closed on itself before a straight jump to the next piece's first point, and
    the way back retraces the jumps, so every bridge is walked once each way and encloses no area.

    Args:
        polygons: ``[(K_i, 2)]`` pieces.

    Returns:
        ``(sum K_i + 2 n - 2, 2)`` points for ``n`` pieces (a single piece is returned unchanged).
    """
    if len(polygons) == 1:
        return polygons[0]
    firsts = [p[:1] for p in polygons]
    return np.concatenate([np.concatenate([p, p[:1]]) for p in polygons] + firsts[-2:0:-1])


def yolo_seg_labels(data: dict[str, Any]) -> dict[int, list[str]]:
    """Ultralytics segment label lines per image id for one COCO split.

    Args:
        data: a COCO dict (``images`` with width/height, ``annotations``, ``categories``).

    Returns:
        ``{image_id: ["cls x1 y1 x2 y2 ...", ...]}`` with every image id present (empty list for no instances).

    Raises:
        DataError: an annotation refers to an unknown image or category id.
    """
    cat_index = {c["id"]: i for i, c in enumerate(sorted(data["categories"], key=lambda c: c["id"]))}
    sizes = {im["id"]: (int(im["width"]), int(im["height"])) for im in data["images"]}
    out: dict[int, list[str]] = {im["id"]: [] for im in data["images"]}
    for a in data["annotations"]:
        if a.get("iscrowd", 0):
            continue
        try:
            width, height = sizes[a["image_id"]]
            cls = cat_index[a["category_id"]]
        except KeyError as e:
            raise DataError(f"annotation {a.get('id')} refers to unknown image/category id {e}") from e
        ring = bridge(instance_polygons(a, height, width)) / np.array([width, height], dtype=np.float64)
        ring = np.clip(ring, 0.0, 1.0)
        if np.ptp(ring[:, 0]) <= 0 or np.ptp(ring[:, 1]) <= 0:
            continue  # nothing left inside the image
        out[a["image_id"]].append(f"{cls} " + " ".join(f"{v:.6f}" for v in ring.reshape(-1)))
    return out
