"""Geometric and photometric transforms that move an image and its instances together (numpy + OpenCV).

Coordinates are continuous pixels: pixel ``j`` covers ``[j, j + 1)``; a box ``x2`` is an exclusive edge. OpenCV's
warps address pixel centres (index ``i = p - 0.5``), so the matrix handed to OpenCV is ``M`` re-expressed in index
space: ``i' = A i + t + A (0.5, 0.5) - 0.5``. Boxes are re-derived from
the transformed outline points after a warp (tight for polygons, the usual corner envelope for box-only instances),
then clipped; instances that become too small or mostly leave the frame are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass
class Annotated:
    """An image with its instances in one pixel frame.

    Attributes:
        image: ``(H, W, C)`` uint8. May be a shared (cached) array: transforms never write into their input.
        boxes: ``(N, 4)`` float32 xyxy.
        labels: ``(N,)`` int64 category indices.
        points: ``(T, 2)`` float32 outline points.
        owner: ``(T,)`` int64 instance index per point (non-decreasing; every instance owns >= 1 point).
        part: ``(T,)`` int64 polygon index per point.
        polygonal: ``(N,)`` bool, outline is a real polygon.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    points: np.ndarray
    owner: np.ndarray
    part: np.ndarray
    polygonal: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls, image: np.ndarray) -> Annotated:
        """``image`` with no instances."""
        return cls(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros((0, 2), np.float32),
                   np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool))

    @property
    def hw(self) -> tuple[int, int]:
        """Image ``(height, width)``."""
        return self.image.shape[0], self.image.shape[1]

    def select(self, keep: np.ndarray) -> Annotated:
        """Keep the instances where ``keep`` ``(N,)`` bool is True (points re-indexed)."""
        if keep.all():
            return self
        pk = keep[self.owner]
        new_index = np.cumsum(keep) - 1
        return replace(self, boxes=self.boxes[keep], labels=self.labels[keep], points=self.points[pk],
                       owner=new_index[self.owner[pk]], part=self.part[pk], polygonal=self.polygonal[keep])

    def with_points(self, points: np.ndarray, image: np.ndarray) -> Annotated:
        """Same instances with new points/image; boxes re-derived from the points."""
        return replace(self, image=image, points=points, boxes=boxes_from_points(points, self.owner, len(self)))


def concat(items: list[Annotated], image: np.ndarray) -> Annotated:
    """Concatenate the instances of ``items`` (already in one frame) onto ``image``."""
    n_off = np.cumsum([0] + [len(a) for a in items[:-1]])
    p_off = np.cumsum([0] + [int(a.part.max()) + 1 if len(a.part) else 0 for a in items[:-1]])
    return Annotated(
        image=image,
        boxes=np.concatenate([a.boxes for a in items]).reshape(-1, 4),
        labels=np.concatenate([a.labels for a in items]),
        points=np.concatenate([a.points for a in items]).reshape(-1, 2),
        owner=np.concatenate([a.owner + o for a, o in zip(items, n_off, strict=True)]),
        part=np.concatenate([a.part + o for a, o in zip(items, p_off, strict=True)]),
        polygonal=np.concatenate([a.polygonal for a in items]))


def boxes_from_points(points: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Per-instance min/max of the points: ``(T, 2)`` with sorted ``owner (T,)`` -> ``(n, 4)`` xyxy."""
    if n == 0:
        return np.zeros((0, 4), np.float32)
    starts = np.searchsorted(owner, np.arange(n))
    lo = np.minimum.reduceat(points, starts, axis=0)
    hi = np.maximum.reduceat(points, starts, axis=0)
    return np.concatenate([lo, hi], axis=1).astype(np.float32)


def _hwc(img: np.ndarray) -> np.ndarray:
    """OpenCV drops a single channel axis; put it back."""
    return img[:, :, None] if img.ndim == 2 else img


def resize_long_side(ann: Annotated, size: int) -> tuple[Annotated, float]:
    """Resize so the long side is ``size`` (same rounding/interpolation as ``rtvp.imaging.letterbox``).

    Returns:
        ``(resized, scale)`` with ``scale = size / max(h, w)``. Instances use the exact per-axis pixel ratios.
    """
    h, w = ann.hw
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) == (w, h):
        return ann, scale
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    img = _hwc(cv2.resize(ann.image, (nw, nh), interpolation=interp))
    r = np.array([nw / w, nh / h], dtype=np.float32)
    return replace(ann, image=img, boxes=ann.boxes * np.tile(r, 2), points=ann.points * r), scale


def pad_square(ann: Annotated, size: int, pad_value: int = PAD_VALUE) -> tuple[Annotated, tuple[int, int]]:
    """Centre ``ann`` (sides <= ``size``) on a ``size x size`` canvas; returns ``(padded, (pad_x, pad_y))``."""
    h, w = ann.hw
    px, py = (size - w) // 2, (size - h) // 2
    out = np.full((size, size, ann.image.shape[2]), pad_value, dtype=np.uint8)
    out[py : py + h, px : px + w] = ann.image
    return shift(replace(ann, image=out), px, py), (px, py)


def shift(ann: Annotated, dx: float, dy: float) -> Annotated:
    """Translate the instances by ``(dx, dy)`` (the image is left as is)."""
    d = np.array([dx, dy], dtype=np.float32)
    return replace(ann, boxes=ann.boxes + np.tile(d, 2), points=ann.points + d)


def flip(ann: Annotated, horizontal: bool) -> Annotated:
    """Mirror left-right (``horizontal``) or top-bottom."""
    h, w = ann.hw
    if horizontal:
        img, b, p = ann.image[:, ::-1], ann.boxes[:, [2, 1, 0, 3]].copy(), ann.points.copy()
        b[:, [0, 2]] = w - b[:, [0, 2]]
        p[:, 0] = w - p[:, 0]
    else:
        img, b, p = ann.image[::-1], ann.boxes[:, [0, 3, 2, 1]].copy(), ann.points.copy()
        b[:, [1, 3]] = h - b[:, [1, 3]]
        p[:, 1] = h - p[:, 1]
    return replace(ann, image=np.ascontiguousarray(img), boxes=b, points=p)


def clip_filter(ann: Annotated, region: tuple[float, float, float, float], min_size: float = 2.0,
                min_visible: float = 0.1) -> Annotated:
    """Clip instances to ``region`` (x1, y1, x2, y2); drop those under ``min_size`` px or ``min_visible`` area."""
    if not len(ann):
        return ann
    x1, y1, x2, y2 = region
    lo, hi = np.array([x1, y1], np.float32), np.array([x2, y2], np.float32)
    area0 = np.prod(ann.boxes[:, 2:] - ann.boxes[:, :2], axis=1)
    boxes = np.concatenate([np.clip(ann.boxes[:, :2], lo, hi), np.clip(ann.boxes[:, 2:], lo, hi)], axis=1)
    wh = boxes[:, 2:] - boxes[:, :2]
    keep = (wh > min_size).all(1) & (wh.prod(1) > min_visible * np.maximum(area0, 1e-6))
    clipped = replace(ann, boxes=boxes, points=np.clip(ann.points, lo, hi))
    return clipped.select(keep)


def affine_matrix(rng: np.random.Generator, src_center: tuple[float, float], out_size: int,
                  degrees: float, translate: float, scale: float, shear: float) -> np.ndarray:
    """Random ``(3, 3)`` affine in continuous pixels.

    Moves ``src_center`` to the origin, rotates and scales, shears, then moves to the jittered output centre
    (``out_size / 2 +- translate * out_size``).
    """
    a, s = rng.uniform(-degrees, degrees), rng.uniform(1 - scale, 1 + scale)
    sh = np.tan(np.deg2rad(rng.uniform(-shear, shear, 2)))
    t = rng.uniform(0.5 - translate, 0.5 + translate, 2) * out_size
    c = np.array([[1, 0, -src_center[0]], [0, 1, -src_center[1]], [0, 0, 1]], dtype=np.float64)
    r = np.eye(3)
    r[:2] = cv2.getRotationMatrix2D((0.0, 0.0), a, s)
    shm = np.array([[1, sh[0], 0], [sh[1], 1, 0], [0, 0, 1]], dtype=np.float64)
    tm = np.array([[1, 0, t[0]], [0, 1, t[1]], [0, 0, 1]], dtype=np.float64)
    return tm @ shm @ r @ c


def warp(ann: Annotated, m: np.ndarray, out_size: int, pad_value: int = PAD_VALUE) -> Annotated:
    """Apply the ``(3, 3)`` affine ``m`` (continuous-pixel convention) to image and outlines; clip and filter."""
    h, w = ann.hw
    a = m[:2].copy()
    a[:, 2] += a[:, :2].sum(1) * 0.5 - 0.5  # continuous p -> OpenCV index i = p - 0.5
    identity = (w, h) == (out_size, out_size) and np.allclose(a, np.eye(2, 3))
    img = ann.image if identity else _hwc(cv2.warpAffine(
        ann.image, a, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
        borderValue=(pad_value,) * 4))
    pts = ann.points @ m[:2, :2].T.astype(np.float32) + m[:2, 2].astype(np.float32)
    moved = ann.with_points(pts, img)
    return clip_filter(moved, (0, 0, out_size, out_size))


def hsv_jitter(img: np.ndarray, gains: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Random hue/saturation/value gains via lookup tables; returns a new ``(H, W, C)`` uint8 array.

    Images with other than 3 channels get a brightness gain from ``v`` and a contrast gain from ``s`` instead.
    """
    r = rng.uniform(-1, 1, 3) * np.asarray(gains, dtype=np.float64) + 1
    x = np.arange(256, dtype=np.float64)
    if img.shape[2] != 3:
        lut = np.clip(((x - 127.5) * math.sqrt(r[1]) + 127.5) * r[2], 0, 255).astype(np.uint8)
        return _hwc(cv2.LUT(img, lut))
    h, s, v = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
    lut_h = ((x * r[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
