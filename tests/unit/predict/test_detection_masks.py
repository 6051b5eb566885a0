"""Masks in original pixels: letterbox geometry by hand, the box crop, and the PyTorch predictor's masks."""

from __future__ import annotations

import numpy as np
import pytest

from predict_toys import (
    one_thread,  # noqa: F401 - autouse fixture
    rtvpnet_ckpt,
    write_images,
)
from rtvp.errors import ConfigError
from rtvp.predict.masks import box_pixels, check_mask_thr, detection_masks
from rtvp.predict.predictor import Predictor


def test_letterbox_geometry_by_hand():
    # a 64 x 32 (w x h) image letterboxed to 32: scale 0.5, pad (0, 8); prototype grid 8 x 8 (stride 4)
    protos = np.full((1, 8, 8), -5.0, np.float32)
    protos[0, 3:5, 2:6] = 5.0  # letterboxed rows 12..20, columns 8..24 -> original y 8..24, x 16..48
    got = detection_masks(np.ones((1, 1), np.float32), protos, np.array([[0, 0, 64, 32]], np.float32), 0.5, (0, 8),
                          (32, 64))[0]
    assert got.shape == (32, 64)
    ys, xs = np.nonzero(got)  # bilinear crosses 0 exactly at the cell borders (corners come out rounded)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (8, 23, 16, 47)
    assert got[12:20, 16:48].all() and got[8:24, 20:44].all()


def test_masks_are_cropped_to_their_box():
    protos = np.full((1, 8, 8), 5.0, np.float32)  # the whole image is "mask"
    box = np.array([[3.2, 4.0, 10.6, 20.5]], np.float32)
    got = detection_masks(np.ones((1, 1), np.float32), protos, box, 1.0, (0, 0), (32, 32))[0]
    x0, x1, y0, y1 = box_pixels(box[0], 32, 32)
    assert (x0, x1, y0, y1) == (3, 11, 4, 20)  # centres x + 0.5 in [3.2, 10.6), y + 0.5 in [4, 20.5)
    assert got.sum() == (x1 - x0) * (y1 - y0) and got[y0:y1, x0:x1].all()
    assert detection_masks(np.zeros((0, 1)), protos, np.zeros((0, 4)), 1.0, (0, 0), (5, 7)).shape == (0, 5, 7)


def test_predictor_returns_a_mask_per_detection(tmp_path):
    weights = tmp_path / "w.pt"
    rtvpnet_ckpt(weights, imgsz=64, masks=True)
    images = write_images(tmp_path / "imgs", [(100, 60), (30, 90)])
    dets = Predictor(weights, conf=0.05).predict(images)
    assert sum(len(d) for d in dets) > 0
    for d, (w, h) in zip(dets, [(100, 60), (30, 90)], strict=True):
        assert d.mask is not None and d.mask.shape == (len(d), h, w) and d.mask.dtype == bool
        for m, box in zip(d.mask, d.xyxy, strict=True):  # nothing outside the box
            x0, x1, y0, y1 = box_pixels(box, h, w)
            outside = m.copy()
            outside[y0:y1, x0:x1] = False
            assert not outside.any()
    plain = tmp_path / "p.pt"
    rtvpnet_ckpt(plain, imgsz=64)
    assert Predictor(plain, conf=0.05).predict(images[:1])[0].mask is None


def test_mask_threshold_is_a_probability_cut():
    # constant logit -0.5 (probability 0.378) inside the box; a ramp in x on the second prototype
    protos = np.full((1, 8, 8), -0.5, np.float32)
    box = np.array([[0, 0, 32, 32]], np.float32)
    coef = np.ones((1, 1), np.float32)
    assert not detection_masks(coef, protos, box, 1.0, (0, 0), (32, 32)).any()  # default 0.5
    assert detection_masks(coef, protos, box, 1.0, (0, 0), (32, 32), threshold=0.37).all()
    assert not detection_masks(coef, protos, box, 1.0, (0, 0), (32, 32), threshold=0.38).any()
    ramp = np.broadcast_to(np.arange(8, dtype=np.float32) - 4.0, (1, 8, 8)).copy()  # logit = cell x - 4
    cuts = {}
    for thr in (0.5, 0.1):  # logit > 0 from cell x 4, logit > ln(1 / 9) = -2.197 from cell x 1.803
        m = detection_masks(coef, ramp, box, 1.0, (0, 0), (32, 32), threshold=thr)
        assert (m == m[:1]).all()  # the same in every row
        cuts[thr] = int(np.argmax(m[0]))
    # pixel x samples cell (x + 0.5) / 4 - 0.5: the first past cell 4 is x = 18 (4.125), past 1.803 x = 9 (1.875)
    assert cuts == {0.5: 18, 0.1: 9}


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 2, True, "0.5", float("nan")])
def test_bad_mask_threshold_is_refused_with_the_flag_name(bad):
    with pytest.raises(ConfigError, match=r"--mask-thr must be a mask probability strictly between 0 and 1"):
        check_mask_thr(bad)


def test_predictor_mask_threshold_grows_the_masks(tmp_path):
    weights = tmp_path / "w.pt"
    rtvpnet_ckpt(weights, imgsz=64, masks=True)
    images = write_images(tmp_path / "imgs", [(100, 60)])
    with pytest.raises(ConfigError, match="--mask-thr"):
        Predictor(weights, mask_thr=1.0)
    base = Predictor(weights, conf=0.05).predict(images)[0]
    low = Predictor(weights, conf=0.05, mask_thr=0.05).predict(images)[0]
    high = Predictor(weights, conf=0.05, mask_thr=0.95).predict(images)[0]
    np.testing.assert_array_equal(base.xyxy, low.xyxy)  # the threshold touches the masks only
    assert (low.mask >= base.mask).all() and (base.mask >= high.mask).all()
    assert low.mask.sum() > high.mask.sum()
