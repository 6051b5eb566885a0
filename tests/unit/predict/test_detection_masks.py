"""Masks in original pixels: letterbox geometry by hand, the box crop, and the PyTorch predictor's masks."""

from __future__ import annotations

import numpy as np

from predict_toys import (
    one_thread,  # noqa: F401 - autouse fixture
    rtvpnet_ckpt,
    write_images,
)
from rtvp.predict.masks import box_pixels, detection_masks
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
