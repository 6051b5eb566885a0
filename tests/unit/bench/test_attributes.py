from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_util

from rtvp.bench.attributes import LOCATIONS, derive_attributes, location_word, segmentation_shape, size_class
from rtvp.errors import DataError


def _rle(mask: np.ndarray, as_str: bool = True) -> dict:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    if as_str:
        rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _disk(r: int, size: int = 100) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    cv2.circle(m, (size // 2, size // 2), r, 1, -1)
    return m


@pytest.mark.parametrize(
    ("cx", "cy", "word"),
    [(10, 10, "top-left"), (150, 10, "top"), (290, 10, "top-right"), (10, 150, "left"), (150, 150, "center"),
     (290, 150, "right"), (10, 290, "bottom-left"), (150, 290, "bottom"), (290, 290, "bottom-right")],
)
def test_location_grid_words(cx, cy, word):
    assert location_word([cx - 2, cy - 2, 4, 4], 300, 300) == word


def test_location_boundaries_are_half_open():
    # centre exactly on x = W/3 belongs to the middle column, just left of it to the left column
    assert location_word([99, 140, 2, 20], 300, 300) == "center"
    assert location_word([98.9, 140, 2, 20], 300, 300) == "left"
    assert location_word([190, 190, 20, 20], 300, 300) == "bottom-right"  # centre (200, 200) = 2/3 lines
    # centres on the far edges stay in the last cell, outside boxes are clamped
    assert location_word([300, 300, 0, 0], 300, 300) == "bottom-right"
    assert location_word([-50, -50, 10, 10], 300, 300) == "top-left"
    assert location_word([0, 0, 300, 300], 300, 300) == "center"
    assert len(set(LOCATIONS)) == 9


def test_location_rejects_empty_image():
    with pytest.raises(DataError, match="positive"):
        location_word([0, 0, 1, 1], 0, 10)


def test_size_thresholds_coco():
    assert size_class(0) == "small"
    assert size_class(32 * 32 - 0.01) == "small"
    assert size_class(32 * 32) == "medium"
    assert size_class(96 * 96 - 1) == "medium"
    assert size_class(96 * 96) == "large"


def test_box_only_rules():
    assert derive_attributes([0, 0, 100, 5], None, 300, 300) == {
        "location": "top-left", "size": "small", "morphology": "elongated"}
    assert derive_attributes([0, 0, 5, 15], [], 300, 300)["morphology"] == "elongated"  # aspect exactly 3
    assert derive_attributes([0, 0, 5, 14], [], 300, 300)["morphology"] == "irregular"
    assert derive_attributes([100, 100, 40, 40], None, 300, 300) == {
        "location": "center", "size": "medium", "morphology": "irregular"}  # shape unknown without a mask
    assert derive_attributes([0, 0, 0, 10], None, 300, 300)["morphology"] == "elongated"  # degenerate


@pytest.mark.parametrize("r", [3, 8, 30])
def test_disk_mask_is_round(r):
    m = _disk(r)
    rle = _rle(m)
    box = mask_util.toBbox(rle).tolist()
    attrs = derive_attributes(box, rle, 100, 100)
    assert attrs["morphology"] == "round"
    assert attrs["location"] == "center"
    assert attrs["size"] == size_class(m.sum())


def test_line_mask_is_elongated_and_area_from_mask():
    m = np.zeros((60, 200), np.uint8)
    m[10:15, 0:100] = 1
    aspect, circ, area = segmentation_shape(_rle(m, as_str=False))
    assert aspect == pytest.approx(20.0) and area == 500 and circ < 0.6
    assert derive_attributes([0, 10, 100, 5], _rle(m), 200, 60)["morphology"] == "elongated"
    # a diagonal line: the box is square but the min-area rectangle is long
    d = np.zeros((100, 100), np.uint8)
    cv2.line(d, (5, 5), (90, 90), 1, 3)
    assert derive_attributes([5, 5, 86, 86], _rle(d), 100, 100)["morphology"] == "elongated"


def test_star_mask_is_irregular():
    angles = np.linspace(0, 2 * math.pi, 16, endpoint=False)
    radii = np.where(np.arange(16) % 2 == 0, 40, 12)
    pts = np.stack([50 + radii * np.cos(angles), 50 + radii * np.sin(angles)], 1).round().astype(np.int32)
    m = np.zeros((100, 100), np.uint8)
    cv2.fillPoly(m, [pts], 1)
    aspect, circ, _ = segmentation_shape(_rle(m))
    assert aspect < 2 and circ < 0.6
    assert derive_attributes(mask_util.toBbox(_rle(m)).tolist(), _rle(m), 100, 100)["morphology"] == "irregular"


def test_polygons():
    t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    circle = np.stack([50 + 20 * np.cos(t), 50 + 20 * np.sin(t)], 1).ravel().tolist()
    attrs = derive_attributes([30, 30, 40, 40], [circle], 100, 100)
    assert attrs == {"location": "center", "size": "medium", "morphology": "round"}  # pi*20^2 ~ 1251 >= 1024
    rect = [0, 0, 100, 0, 100, 5, 0, 5]
    assert derive_attributes([0, 0, 100, 5], [rect], 300, 300)["morphology"] == "elongated"
    # the area argument wins over the polygon area
    assert derive_attributes([30, 30, 40, 40], [circle], 100, 100, area=10)["size"] == "small"
    # rings with fewer than 3 points are ignored -> box rules
    assert derive_attributes([0, 0, 10, 10], [[1, 2, 3, 4]], 100, 100)["morphology"] == "irregular"


def test_single_pixel_mask_is_a_round_dot():
    m = np.zeros((10, 10), np.uint8)
    m[4, 4] = 1
    assert derive_attributes([4, 4, 1, 1], _rle(m), 10, 10)["morphology"] == "round"


def test_uncompressed_rle_counts():
    m = _disk(10)
    fortran = np.asfortranarray(m).ravel(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], fortran, [2]])) != 0)
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    counts = counts[:-1] if counts[-1] == 0 else counts
    rle = {"size": [100, 100], "counts": counts}
    assert segmentation_shape(rle)[2] == m.sum()


def test_bad_segmentation_errors():
    with pytest.raises(DataError, match="RLE"):
        segmentation_shape({"counts": "abc"})
    with pytest.raises(DataError, match="polygons or an RLE"):
        segmentation_shape("nope")
