"""Mask RLE and measurements: round trips against pycocotools, hand-computed shapes, errors that name the fix."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from rtvp.errors import ConfigError
from rtvp.masks import (
    check_px_size,
    decode_rle,
    encode_rle,
    encode_rles,
    mask_records,
    measure_mask,
    measure_masks,
    rle_polygons,
    skeleton_length,
)

SQRT2 = math.sqrt(2)


def _rect(h: int = 20, w: int = 120, rows: slice = slice(5, 10), cols: slice = slice(10, 110)) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[rows, cols] = True
    return m


def _diagonal(n: int = 50, side: int = 60) -> np.ndarray:
    m = np.zeros((side, side), bool)
    m[np.arange(n) + 5, np.arange(n) + 5] = True
    return m


def _thin_l() -> np.ndarray:
    """1-px L: a vertical arm of 40 pixels (rows 10-49, column 10) and a bottom arm of 30 (row 49, columns 10-39)."""
    m = np.zeros((60, 60), bool)
    m[10:50, 10] = True
    m[49, 10:40] = True
    return m


# ----------------------------------------------------------------------------------------------------------- RLE
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rle_matches_pycocotools_and_round_trips(seed):
    rng = np.random.default_rng(seed)
    m = rng.random((37, 53)) < 0.3
    rle = encode_rle(m)
    ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    assert rle == {"size": [37, 53], "counts": ref["counts"].decode("ascii")}
    assert json.loads(json.dumps(rle)) == rle  # JSON-serialisable as is
    back = decode_rle(rle)
    assert back.dtype == bool and back.shape == (37, 53) and (back == m).all()
    assert (decode_rle(ref) == m).all()  # pycocotools' own dict, counts as bytes


def test_rle_by_hand():
    # runs 1 zero, 2 ones, 3 zeros in column-major order over 2 x 3 -> ones at (1, 0) and (0, 1)
    expect = np.array([[0, 1, 0], [1, 0, 0]], bool)
    assert (decode_rle({"size": [2, 3], "counts": [1, 2, 3]}) == expect).all()  # uncompressed
    assert (decode_rle({"size": [2, 3], "counts": "123"}) == expect).all()  # each run < 16: one character '0' + n
    assert encode_rle(expect) == {"size": [2, 3], "counts": "123"}
    assert encode_rle(np.zeros((4, 5), np.uint8))["counts"] == "d0"  # one run of 20 = 0b10100: '0' + 0b110100, '0'
    assert decode_rle({"size": [0, 0], "counts": ""}).shape == (0, 0)


def test_encode_many_masks_at_once():
    masks = np.stack([_rect(), ~_rect(), np.zeros((20, 120), bool)])
    assert encode_rles(masks) == [encode_rle(m) for m in masks]
    assert encode_rles(np.zeros((0, 20, 120), bool)) == []


@pytest.mark.parametrize(("rle", "fragment"), [
    ([1, 2, 3], "must be a dict with 'size'"),
    ({"counts": "123"}, "must be a dict with 'size'"),
    ({"size": [2], "counts": "123"}, "size must be [H, W]"),
    ({"size": [2, -3], "counts": "123"}, "size must be [H, W]"),
    ({"size": [2, 3.0], "counts": "123"}, "size must be [H, W]"),
    ({"size": [2, 3], "counts": "12~"}, "character '~' at 2"),
    ({"size": [2, 3], "counts": "12P"}, "truncated"),  # 'P' has the continuation bit set
    ({"size": [2, 3], "counts": "12"}, "add up to 3 pixels but size 2x3 has 6"),
    ({"size": [2, 3], "counts": [7, -1]}, "negative run"),
    ({"size": [2, 3], "counts": [1.5, 4.5]}, "compressed string or a list of ints"),
    ({"size": [2, 3], "counts": b"\xff"}, "not ASCII"),
])
def test_malformed_rle_is_a_clear_error(rle, fragment):
    with pytest.raises(ValueError, match="RLE") as err:
        decode_rle(rle)
    assert fragment in str(err.value)


@pytest.mark.parametrize(("mask", "fragment"), [
    (np.zeros((2, 3, 4), bool), "must be a (H, W) bool array, got shape (2, 3, 4)"),
    (np.full((3, 3), 0.7), "only 0/1 (or bool) values, got values in [0.7, 0.7]; threshold it first"),
    (np.array([["a"]]), "got dtype <U1"),
])
def test_bad_masks_are_a_clear_error(mask, fragment):
    for fn in (encode_rle, measure_mask):
        with pytest.raises(ValueError) as err:
            fn(mask)
        assert fragment in str(err.value)
    with pytest.raises(ValueError, match=r"masks must be a \(N, H, W\)"):
        encode_rles(np.zeros((3, 3), bool))


# ------------------------------------------------------------------------------------------------- measurements
def test_skeleton_length_counts_links_by_hand():
    assert skeleton_length(np.zeros((3, 3), bool)) == 0.0
    assert skeleton_length(np.eye(1, dtype=bool)) == 0.0  # one pixel: no link
    assert skeleton_length(np.eye(2, dtype=bool)) == pytest.approx(SQRT2)
    assert skeleton_length(np.fliplr(np.eye(3, dtype=bool))) == pytest.approx(2 * SQRT2)  # anti-diagonal
    corner = np.array([[1, 1], [0, 1]], bool)  # 2 straight links; the diagonal (0,0)-(1,1) is not counted again
    assert skeleton_length(corner) == 2.0
    assert skeleton_length(_thin_l()) == 39 + 29  # the 1-px L itself: 39 + 29 straight steps


def test_filled_5x100_rectangle():
    for m in (_rect(), _rect().T):  # lying and standing
        got = measure_mask(m)
        assert set(got) == {"area_px", "length_px", "width_px"}
        assert got["area_px"] == 500.0
        assert got["width_px"] == 5.0  # max DT 3 (centre row to the background rows) -> 2 * 3 - 1
        assert 95.0 <= got["length_px"] <= 100.0  # thinning shortens the ends by about half the width


def test_even_width_is_one_less_by_convention():
    assert measure_mask(_rect(rows=slice(5, 9)))["width_px"] == 3.0  # 4 thick: max DT 2 -> 3


def test_one_pixel_diagonal_line():
    got = measure_mask(_diagonal(50))
    assert got["area_px"] == 50.0 and got["width_px"] == 1.0
    assert got["length_px"] == pytest.approx(49 * SQRT2)


def test_l_shapes():
    thin = measure_mask(_thin_l())
    assert thin["area_px"] == 69.0 and thin["width_px"] == 1.0
    # 39 + 29 steps through the corner pixel; thinning may cut the corner: 38 + 28 + sqrt(2)
    assert 66 + SQRT2 - 1e-9 <= thin["length_px"] <= 68.0
    thick = np.zeros((60, 60), bool)
    thick[10:50, 10:13] = True  # 40 x 3 vertical arm
    thick[47:50, 10:40] = True  # 3 x 30 bottom arm (overlaps the other in a 3 x 3 corner)
    got = measure_mask(thick)
    assert got["area_px"] == 40 * 3 + 30 * 3 - 9 and got["width_px"] == 3.0
    assert 62.0 <= got["length_px"] <= 68.0  # centre-line 38 + 28 = 66, minus thinned ends, plus a bent corner


def test_disc_reports_its_width_and_a_short_skeleton():
    yy, xx = np.mgrid[:41, :41]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 100
    got = measure_mask(disc)
    assert got["area_px"] == 317.0  # lattice points with x^2 + y^2 <= 100 (Gauss circle, r = 10)
    assert got["width_px"] == pytest.approx(2 * math.sqrt(101) - 1)  # nearest background centre: (10, 1) away
    assert got["length_px"] <= 2.0


def test_the_image_border_counts_as_background():
    assert measure_mask(np.ones((5, 100), bool))["width_px"] == 5.0


def test_millimetre_twins():
    got = measure_mask(_rect(), px_size=0.1)
    assert got["area_mm"] == pytest.approx(5.0)  # 500 px * (0.1 mm)^2 = 5 mm^2
    assert got["width_mm"] == pytest.approx(0.5)
    assert got["length_mm"] == pytest.approx(got["length_px"] * 0.1)
    assert list(got) == ["area_px", "length_px", "width_px", "area_mm", "length_mm", "width_mm"]


def test_empty_mask_is_all_zeros():
    assert measure_mask(np.zeros((10, 10), bool)) == {"area_px": 0.0, "length_px": 0.0, "width_px": 0.0}
    assert set(measure_mask(np.zeros((10, 10), bool), px_size=0.1).values()) == {0.0}


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), 2e6, "0.1", True])
def test_bad_px_size_names_the_field(bad):
    with pytest.raises(ConfigError, match=r"--px-size must be the pixel size in millimetres per pixel"):
        check_px_size(bad, "--px-size")
    with pytest.raises(ConfigError, match="px_size must be"):
        measure_mask(_rect(), px_size=bad)
    assert check_px_size(None) is None and check_px_size(1) == 1.0


def test_many_masks_and_json_records():
    masks = np.stack([_rect(), np.zeros((20, 120), bool)])
    assert measure_masks(masks) == [measure_mask(m) for m in masks]
    assert measure_masks(np.zeros((0, 4, 4), bool)) == []
    recs = mask_records(masks, px_size=0.1)
    assert [list(r) for r in recs] == [["segmentation", "area_px", "length_px", "width_px", "area_mm", "length_mm",
                                        "width_mm"]] * 2
    assert recs[0]["segmentation"] == encode_rle(masks[0])
    assert (recs[0]["area_px"], recs[0]["width_px"], recs[0]["area_mm"]) == (500.0, 5.0, 5.0)
    assert recs[0]["length_px"] == round(measure_mask(masks[0])["length_px"], 2)
    assert recs[1] == {"segmentation": encode_rle(masks[1]), "area_px": 0.0, "length_px": 0.0, "width_px": 0.0,
                       "area_mm": 0.0, "length_mm": 0.0, "width_mm": 0.0}
    assert list(mask_records(masks[:1])[0]) == ["segmentation", "area_px", "length_px", "width_px"]
    json.dumps(recs)  # plain Python types only


def test_rle_polygons_trace_each_piece_from_either_counts_form():
    m = np.zeros((20, 30), bool)
    m[2:6, 3:9] = True  # rows 2-5, columns 3-8
    m[10:15, 20:25] = True
    rle = encode_rle(m)
    runs = [int(v) for v in np.diff(np.flatnonzero(np.diff(np.r_[0, m.T.ravel(), 0].astype(int)) != 0), prepend=0)]
    for counts in (rle, {"size": [20, 30], "counts": runs + [600 - sum(runs)]}):
        polys = sorted(rle_polygons(counts, 20, 30), key=lambda p: p[:, 0].min())
        assert [p.min(0).tolist() + p.max(0).tolist() for p in polys] == [[3, 2, 8, 5], [20, 10, 24, 14]]
