"""Mask targets: rasterisation by hand, box-only instances, densified outlines, and masks that still cover the same
pixels after every transform (flip, affine warp cut by the frame, mosaic, copy-paste, letterbox), and in a batch."""

from __future__ import annotations

import numpy as np
import pytest

from rtvp.data.copy_paste import paste
from rtvp.data.masks import MAX_RING_POINTS, densify_ring, instance_masks
from rtvp.data.mosaic import mosaic4
from rtvp.data.transforms import Annotated, affine_matrix, flip, pad_square, warp

# off the half-pixel grid, where OpenCV's rounding of an edge is ambiguous
L_SHAPE = np.array([[10, 8], [44, 8], [44, 24], [26, 24], [26, 52], [10, 52]], dtype=np.float32) + 0.25


def _annotated(ring: np.ndarray, size: int = 64, polygonal: bool = True) -> Annotated:
    """A ``size`` square image whose pixels inside ``ring`` are 255 (else 0), with the ring as its one instance."""
    pts = densify_ring(ring, 2.0)
    blank = Annotated(np.zeros((size, size, 3), np.uint8), np.zeros((1, 4), np.float32), np.array([0]), pts,
                      np.zeros(len(pts), np.int64), np.zeros(len(pts), np.int64), np.array([polygonal]))
    painted = instance_masks(blank, size, stride=1)[0][0].astype(bool)
    image = np.where(painted[:, :, None], 255, 0).astype(np.uint8)
    lo, hi = pts.min(0), pts.max(0)
    return Annotated(image, np.array([[*lo, *hi]], np.float32), np.array([0]), pts, blank.owner, blank.part,
                     blank.polygonal)


def _iou(ann: Annotated) -> float:
    """IoU between the bright pixels of the image and the union of the rasterised instance masks."""
    size = ann.image.shape[0]
    masks, has = instance_masks(ann, size, stride=1)
    assert has.all()
    drawn, bright = masks.any(0), ann.image[:, :, 0] > 127
    return float((drawn & bright).sum() / max((drawn | bright).sum(), 1))


def test_rasterised_by_hand():
    ann = _annotated(np.array([[4, 4], [12, 4], [12, 12], [4, 12]], np.float32), size=16)
    masks, has = instance_masks(ann, 16, stride=4)
    expected = np.zeros((4, 4), np.uint8)
    expected[1:3, 1:3] = 1  # cell centres (6, 6), (6, 10), (10, 6), (10, 10) lie in the square
    assert has.tolist() == [True] and np.array_equal(masks[0], expected)


def test_box_only_instances_get_no_mask():
    ann = _annotated(L_SHAPE, polygonal=False)
    masks, has = instance_masks(ann, 64)
    assert has.tolist() == [False] and masks.shape == (1, 16, 16) and masks.sum() == 0


def test_densify_keeps_the_vertices_and_bounds_the_spacing():
    ring = np.array([[0, 0], [10, 0], [10, 3]], np.float32)
    dense = densify_ring(ring, 2.0)
    steps = np.linalg.norm(np.diff(np.vstack([dense, dense[:1]]), axis=0), axis=1)
    assert steps.max() <= 2.0 + 1e-5 and all(any(np.allclose(v, d) for d in dense) for v in ring)
    assert len(densify_ring(np.array([[0, 0], [1e5, 0], [1e5, 1]], np.float32), 1.0)) <= MAX_RING_POINTS + 3


def test_the_painted_shape_is_the_mask():
    assert _iou(_annotated(L_SHAPE)) == 1.0


@pytest.mark.parametrize("horizontal", [True, False])
def test_flip_moves_the_mask_with_the_pixels(horizontal):
    assert _iou(flip(_annotated(L_SHAPE), horizontal=horizontal)) >= 0.95


def test_affine_warp_cut_by_the_frame():
    ann = _annotated(L_SHAPE)
    m = affine_matrix(np.random.default_rng(3), (32.0, 32.0), 64, 30.0, 0.3, 0.3, 5.0)
    moved = warp(ann, m, 64)
    assert len(moved) == 1 and _iou(moved) >= 0.9


def test_mosaic_of_four_cut_tiles():
    tiles = [_annotated(L_SHAPE) for _ in range(4)]
    mixed = mosaic4(tiles, 64, (40, 70))  # 128 x 128 canvas, tiles cut at the centre
    assert len(mixed) >= 2 and _iou(mixed) >= 0.95


def test_copy_paste_carries_the_mask():
    target = Annotated.empty(np.zeros((64, 64, 3), np.uint8))
    pasted = paste(target, _annotated(L_SHAPE), 0, np.random.default_rng(0), mirror=True)
    assert len(pasted) == 1 and _iou(pasted) >= 0.95


def test_letterbox_padding():
    ann = _annotated(L_SHAPE)
    small = Annotated(ann.image[:, :48], ann.boxes, ann.labels, ann.points, ann.owner, ann.part, ann.polygonal)
    padded, _ = pad_square(small, 64)
    assert _iou(padded) >= 0.95
