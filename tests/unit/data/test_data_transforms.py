from __future__ import annotations

import numpy as np
import pytest

from rtvp.data import DetectionDataset
from rtvp.data.annotations import box_corners
from rtvp.data.transforms import Annotated, affine_matrix, clip_filter, flip, hsv_jitter, warp
from rtvp.imaging import letterbox, read_image, unletterbox_boxes

NO_AUG = dict(mosaic=0.0, flip=0.0, flipud=0.0, hsv=(0.0, 0.0, 0.0), affine=(0.0, 0.0, 0.0, 0.0), copy_paste=0.0)


def rect_sample(renderer, box, polygon: bool, w=96, h=64) -> Annotated:
    img = renderer(w, h, 3, [box], seed=0)
    boxes = np.array([box], dtype=np.float32)
    if polygon:  # the same rectangle as an 8-vertex polygon (edge midpoints too)
        x1, y1, x2, y2 = box
        pts = np.array([[x1, y1], [(x1 + x2) / 2, y1], [x2, y1], [x2, (y1 + y2) / 2], [x2, y2],
                        [(x1 + x2) / 2, y2], [x1, y2], [x1, (y1 + y2) / 2]], dtype=np.float32)
    else:
        pts = box_corners(boxes)
    return Annotated(img, boxes, np.array([0]), pts, np.zeros(len(pts), np.int64), np.zeros(len(pts), np.int64),
                     np.array([polygon]))


def test_letterbox_maps_boxes_exactly(bench):
    ds = DetectionDataset(bench, "closed_train", imgsz=64, augment=False)
    s = ds[4]  # image id 5: 100x50, box (10, 10, 30, 30) -> scale 0.64, pad (0, 16)
    assert s.image_id == 5 and s.scale == pytest.approx(0.64) and s.pad == (0, 16)
    np.testing.assert_allclose(s.boxes, [[6.4, 22.4, 19.2, 35.2]], atol=1e-5)
    expected, scale, pad = letterbox(read_image(bench / "images/pcb/c.png"), 64)
    assert np.array_equal(s.image, expected) and pad == s.pad and scale == pytest.approx(s.scale)


def test_unletterbox_round_trip(bench):
    ds = DetectionDataset(bench, "closed_train", imgsz=64, augment=False)
    for i, e in enumerate(ds.entries):
        s = ds[i]
        back = unletterbox_boxes(s.boxes, s.scale, s.pad, e.width, e.height)
        np.testing.assert_allclose(back, e.boxes, atol=0.5 / s.scale)  # short-side rounding <= half a pixel


def test_boxes_bound_the_white_pixels_without_augmentation(bench, white_box):
    ds = DetectionDataset(bench, "closed_train", imgsz=96, augment=False)
    s = ds[0]  # 96x64 image, exact placement (scale 1, pad (0, 16))
    np.testing.assert_allclose(s.boxes[0], white_box(s.image), atol=1e-5)


@pytest.mark.parametrize("horizontal", [True, False])
def test_flip_keeps_box_on_object(renderer, white_box, horizontal):
    out = flip(rect_sample(renderer, (20, 10, 50, 30), polygon=True), horizontal)
    np.testing.assert_allclose(out.boxes[0], white_box(out.image), atol=1e-5)
    assert out.image.flags.c_contiguous


@pytest.mark.parametrize("seed", range(6))
def test_affine_polygon_box_stays_tight(renderer, white_box, seed):
    ann = rect_sample(renderer, (30, 20, 60, 44), polygon=True)
    m = affine_matrix(np.random.default_rng(seed), (48, 32), 96, degrees=40, translate=0.1, scale=0.3, shear=8)
    out = warp(ann, m, 96)
    assert len(out) == 1 and out.image.shape == (96, 96, 3)
    np.testing.assert_allclose(out.boxes[0], white_box(out.image, 140), atol=1.0)  # edge pixels half covered


def test_affine_box_only_envelope_contains_object(renderer, white_box):
    ann = rect_sample(renderer, (30, 20, 60, 44), polygon=False)
    m = affine_matrix(np.random.default_rng(3), (48, 32), 96, degrees=40, translate=0.0, scale=0.0, shear=0)
    out = warp(ann, m, 96)
    wb = white_box(out.image)
    assert (out.boxes[0, :2] <= wb[:2] + 1).all() and (out.boxes[0, 2:] >= wb[2:] - 1).all()


def test_warp_pure_translation_is_exact(renderer, white_box):
    ann = rect_sample(renderer, (30, 20, 60, 44), polygon=False)
    m = np.array([[1, 0, 7], [0, 1, -5], [0, 0, 1]], dtype=np.float64)
    out = warp(ann, m, 96)
    np.testing.assert_allclose(out.boxes[0], [37, 15, 67, 39])
    np.testing.assert_allclose(white_box(out.image), [37, 15, 67, 39])


def test_clip_filter_clips_and_drops():
    boxes = np.array([[-10, -10, 20, 20], [90, 90, 200, 200], [5, 5, 6, 30]], dtype=np.float32)
    pts = box_corners(boxes)
    owner = np.repeat(np.arange(3), 4)
    ann = Annotated(np.zeros((100, 100, 3), np.uint8), boxes, np.array([7, 8, 9]), pts, owner, owner,
                    np.zeros(3, bool))
    out = clip_filter(ann, (0, 0, 100, 100))
    # box 1 keeps 100/12100 < 10% of its area, box 2 is 1 px wide: both dropped
    np.testing.assert_allclose(out.boxes, [[0, 0, 20, 20]])
    assert out.labels.tolist() == [7] and out.owner.tolist() == [0] * 4 and out.points.min() >= 0


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_colour_jitter_keeps_shape_and_changes_pixels(channels):
    img = np.random.default_rng(0).integers(30, 220, (16, 24, channels), dtype=np.uint8)
    out = hsv_jitter(img, (0.015, 0.7, 0.4), np.random.default_rng(1))
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)


def test_augmented_pipeline_keeps_box_on_object(bench, white_box):
    ds = DetectionDataset(bench, "closed_train", imgsz=96, augment=True,
                          **{**NO_AUG, "flip": 0.5, "flipud": 0.5, "affine": (30.0, 0.1, 0.25, 5.0)})
    for epoch in range(5):
        s = ds[(epoch, 0)]  # image 1: one white rectangle annotated with a polygon
        assert len(s.boxes) == 1
        np.testing.assert_allclose(s.boxes[0], white_box(s.image, 140), atol=1.0)


def test_warp_uses_continuous_pixel_convention(renderer, white_box):
    # scale x2 about the origin: pixel edges 10 and 20 must land on 20 and 40; an index-space warp would smear
    # the edge to 19 (destination pixel 19 would sample source index 9.5, half white).
    ann = rect_sample(renderer, (10, 10, 20, 20), polygon=False, w=24, h=24)
    out = warp(ann, np.diag([2.0, 2.0, 1.0]), 48)
    np.testing.assert_allclose(out.boxes[0], [20, 20, 40, 40])
    np.testing.assert_allclose(white_box(out.image, 128), [20, 20, 40, 40])
