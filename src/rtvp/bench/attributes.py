"""Per-annotation attributes for rich captions (IMDD-style): location word, COCO size class, morphology.

Rules (all thresholds are module constants, documented here once):

* **location** -- the box centre ``(x + w/2, y + h/2)`` falls in one cell of a 3x3 grid over the image; cells are
  half-open ``[k/3, (k+1)/3)`` so a centre exactly on a grid line belongs to the lower-right cell (a centre on the
  right/bottom image edge stays in the last cell). Words: ``top-left top top-right / left center right /
  bottom-left bottom bottom-right``.
* **size** -- COCO classes on the annotation area (mask area when there is a segmentation, else ``w * h``):
  ``small`` < 32^2 <= ``medium`` < 96^2 <= ``large``.
* **morphology** -- from the mask/polygon when there is one, else from the box:
  ``elongated`` when the aspect ratio (long / short side) of the minimum-area rectangle is >= ``ELONGATED_ASPECT``
  (3.0); ``round`` when the circularity ``4*pi*A / P^2`` of the outline is >= ``ROUND_CIRCULARITY`` (0.6) and the
  aspect ratio is < ``ROUND_MAX_ASPECT`` (2.0); ``irregular`` otherwise. Without a segmentation the shape inside the
  box is unknown, so a box with aspect < 3 is ``irregular`` (the default class), never ``round``.
  Pixel masks are measured on their outer contours (OpenCV, pixel-centre polygons): a digital disk scores
  0.67-0.9 (radius 3 to 30 px), a square pi/4 ~ 0.785 (compact, so squares count as ``round`` too), a crack, a
  line or a star well below 0.6. Masks of one or two pixels have no perimeter and count as ``round`` (a dot).

No torch here: numpy, OpenCV and pycocotools only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from rtvp.errors import DataError

SMALL_AREA = 32.0**2
MEDIUM_AREA = 96.0**2
ELONGATED_ASPECT = 3.0
ROUND_CIRCULARITY = 0.6
ROUND_MAX_ASPECT = 2.0

_ROWS = ("top", "", "bottom")
_COLS = ("left", "", "right")
LOCATIONS = ("top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right")


def location_word(bbox: Sequence[float], width: int, height: int) -> str:
    """3x3 grid word of the box centre, e.g. ``"top-left"`` or ``"center"``.

    Args:
        bbox: ``[x, y, w, h]`` in pixels (COCO).
        width: image width in pixels.
        height: image height in pixels.
    """
    if width <= 0 or height <= 0:
        raise DataError(f"location_word: image size must be positive, got {width}x{height}")
    x, y, w, h = (float(v) for v in bbox[:4])
    col = min(max(int(3.0 * (x + w / 2.0) / width), 0), 2)
    row = min(max(int(3.0 * (y + h / 2.0) / height), 0), 2)
    word = "-".join(p for p in (_ROWS[row], _COLS[col]) if p)
    return word or "center"


def size_class(area: float) -> str:
    """COCO size class of an area in square pixels: ``small`` < 32^2 <= ``medium`` < 96^2 <= ``large``."""
    if area < SMALL_AREA:
        return "small"
    if area < MEDIUM_AREA:
        return "medium"
    return "large"


def _classify(aspect: float, circularity: float | None) -> str:
    if aspect >= ELONGATED_ASPECT:
        return "elongated"
    if circularity is not None and circularity >= ROUND_CIRCULARITY and aspect < ROUND_MAX_ASPECT:
        return "round"
    return "irregular"


def _aspect(side_a: float, side_b: float) -> float:
    short, long = sorted((float(side_a), float(side_b)))
    return math.inf if short <= 0 else long / short


def _polygon_shape(polygons: list[list[float]]) -> tuple[float, float | None, float] | None:
    """``(aspect, circularity, area)`` of COCO polygons (continuous coordinates), ``None`` if no valid ring."""
    rings = [np.asarray(p, dtype=np.float32).reshape(-1, 2) for p in polygons if len(p) >= 6 and len(p) % 2 == 0]
    if not rings:
        return None
    (_, (rw, rh), _) = cv2.minAreaRect(np.concatenate(rings))
    area = float(sum(abs(cv2.contourArea(r)) for r in rings))
    perim = float(sum(cv2.arcLength(r, True) for r in rings))
    circ = 4.0 * math.pi * area / perim**2 if perim > 0 else None
    return _aspect(rw, rh), circ, area


def _mask_shape(mask: np.ndarray) -> tuple[float, float | None, float] | None:
    """``(aspect, circularity, area)`` of a binary ``(H, W)`` mask, ``None`` when the mask is empty."""
    area = float(np.count_nonzero(mask))
    if area == 0:
        return None
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float32)
    (_, (rw, rh), _) = cv2.minAreaRect(points)
    c_area = float(sum(cv2.contourArea(c) for c in contours))
    perim = float(sum(cv2.arcLength(c, True) for c in contours))
    # pixel-centre contours: the rectangle covers one pixel less than the mask on each axis
    circ = 4.0 * math.pi * c_area / perim**2 if perim > 0 else (1.0 if area <= 2 else None)
    return _aspect(rw + 1.0, rh + 1.0), circ, area


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE dict (compressed string/bytes or uncompressed list counts) to a ``(H, W)`` uint8 mask."""
    from pycocotools import mask as mask_util

    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
        if isinstance(counts, list):
            rle = mask_util.frPyObjects(rle, h, w)
        elif isinstance(counts, str):
            rle = {"size": [h, w], "counts": counts.encode("ascii")}
        return np.asarray(mask_util.decode(rle), dtype=np.uint8)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"malformed RLE segmentation {str(rle)[:80]}: {e}") from e


def segmentation_shape(segmentation: Any) -> tuple[float, float | None, float] | None:
    """``(aspect, circularity, area)`` of a COCO segmentation (polygons or RLE); ``None`` for none/empty."""
    if not segmentation:
        return None
    if isinstance(segmentation, dict):
        return _mask_shape(decode_rle(segmentation))
    if isinstance(segmentation, (list, tuple)):
        return _polygon_shape([list(p) for p in segmentation])
    raise DataError(f"segmentation must be a list of polygons or an RLE dict, got {type(segmentation).__name__}")


def derive_attributes(
    bbox: Sequence[float],
    segmentation: Any,
    width: int,
    height: int,
    area: float | None = None,
) -> dict[str, str]:
    """Attributes of one annotation: ``{"location", "size", "morphology"}`` (rules in the module docstring).

    Args:
        bbox: ``[x, y, w, h]`` COCO box in pixels.
        segmentation: COCO polygons ``[[x1, y1, ...], ...]``, an RLE dict, or ``None``/``[]`` for none.
        width: image width in pixels.
        height: image height in pixels.
        area: annotation area when already known; by default the mask/polygon area, else ``w * h``.

    Returns:
        e.g. ``{"location": "top-left", "size": "small", "morphology": "elongated"}``.

    Examples:
        >>> derive_attributes([0, 0, 100, 5], None, 300, 300)
        {'location': 'top-left', 'size': 'small', 'morphology': 'elongated'}
    """
    shape = segmentation_shape(segmentation)
    w, h = float(bbox[2]), float(bbox[3])
    if shape is None:
        aspect, circ, seg_area = _aspect(w, h), None, None
    else:
        aspect, circ, seg_area = shape
    if area is None:
        area = seg_area if seg_area is not None else w * h
    return {
        "location": location_word(bbox, width, height),
        "size": size_class(float(area)),
        "morphology": _classify(aspect, circ),
    }
