"""Instance-mask targets: the outline polygons of an ``Annotated`` rasterised on the prototype grid (stride 4).

Only instances whose outline is a real polygon (``Annotated.polygonal``) get a mask; a box-only instance gets an
empty plane and ``has_mask = False``, so the loss skips it (no fake mask is made from the box). The polygons have
moved with the image through every transform (``rtvp.data.transforms``), so the target is drawn last, in the
final frame. Outlines are densified when loaded (:func:`densify_ring`) because the transforms clip points to the
frame one by one: with points every few pixels, the clipped polygon covers the in-frame pixels of the original.
"""

from __future__ import annotations

import cv2
import numpy as np

from rtvp.data.transforms import Annotated

MASK_STRIDE = 4
"""Side in input pixels of one mask-target (and prototype) cell."""

MAX_RING_POINTS = 512
"""Densified rings keep at most this many points (longer outlines get a coarser step)."""


def densify_ring(ring: np.ndarray, step: float) -> np.ndarray:
    """Insert points along a closed polygon so that consecutive points are at most ``step`` apart.

    Args:
        ring: ``(P, 2)`` float vertices of a closed polygon.
        step: largest spacing in pixels (raised when the ring would exceed :data:`MAX_RING_POINTS`).

    Returns:
        ``(Q, 2)`` float32, ``Q >= P``: the original vertices in order with points on the edges between them.
    """
    if len(ring) < 2 or step <= 0:
        return ring.astype(np.float32)
    nxt = np.roll(ring, -1, axis=0)
    length = np.linalg.norm(nxt - ring, axis=1)
    step = max(step, float(length.sum()) / MAX_RING_POINTS)
    n = np.maximum(1, np.ceil(length / step)).astype(np.int64)  # points contributed by each edge
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n, n)
    return (np.repeat(ring, n, axis=0) + t[:, None] * np.repeat(nxt - ring, n, axis=0)).astype(np.float32)


def instance_masks(ann: Annotated, size: int, stride: int = MASK_STRIDE) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise the instances of a ``size x size`` sample on the ``stride`` grid.

    Each polygon is drawn at full resolution (OpenCV ``fillPoly``; pixel centres at ``+0.5``), then a cell belongs
    to the instance when at least half of its ``stride x stride`` pixels do (area rule, as a mask downsampled by
    averaging); the instance's rings are OR-ed.

    Args:
        ann: the transformed sample (square, side ``size``).
        size: the sample's side in pixels (a multiple of ``stride``).
        stride: pixels per mask cell.

    Returns:
        ``masks (N, size / stride, size / stride)`` uint8 in {0, 1} and ``has_mask (N,)`` bool.
    """
    side = size // stride
    has = np.asarray(ann.polygonal, dtype=bool).copy()
    if not has.any() or not len(ann.points):
        return np.zeros((len(ann), side, side), dtype=np.uint8), has
    full = np.zeros((len(ann), size, size), dtype=np.uint8)
    cuts = np.flatnonzero(np.diff(ann.part)) + 1
    ring_owner = ann.owner[np.concatenate(([0], cuts))]
    for ring, k in zip(np.split(ann.points, cuts), ring_owner.tolist(), strict=True):
        if has[k] and len(ring) >= 3:
            cv2.fillPoly(full[k], [np.round((ring - 0.5) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    if stride == 1:
        return full, has
    cells = full.reshape(len(ann), side, stride, side, stride).sum((2, 4), dtype=np.int32)
    return (2 * cells >= stride * stride).astype(np.uint8), has
