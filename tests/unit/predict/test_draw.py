"""Drawing: boxes in class colours, label placement, highlight, size-adapted style, heat-map overlays."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from rtvp.predict.draw import class_color, draw_detections, encode_image, overlay_heatmap, style
from rtvp.structures import Detections


def _dets(boxes, classes, names=("scratch", "hole")):
    return Detections(np.array(boxes, np.float32), np.linspace(0.9, 0.5, len(boxes)), classes, list(names))


def test_boxes_use_the_class_colour_and_leave_the_input_untouched():
    img = np.zeros((300, 400, 3), np.uint8)
    out = draw_detections(img, _dets([[50, 100, 150, 200], [200, 150, 380, 280]], [0, 1]))
    assert out.shape == img.shape and out.dtype == np.uint8 and not img.any()
    assert tuple(out[150, 50]) == class_color(0)  # left edge of box 0, away from its label
    assert tuple(out[200, 380]) == class_color(1)  # right edge of box 1
    assert not out[250, 100].any()  # outside every box and label


def test_label_sits_above_the_box_or_inside_at_the_top_edge():
    img = np.zeros((300, 400, 3), np.uint8)
    color = np.array(class_color(0))
    above = (draw_detections(img, _dets([[100, 120, 200, 200]], [0])) == color).all(-1)
    assert above[90:120, 100:200].sum() > 300  # label background right above the top edge
    assert above[122:199, 102:199].sum() == 0  # nothing drawn inside the box
    top = (draw_detections(img, _dets([[100, 0, 200, 80]], [0])) == color).all(-1)
    assert top[1:30, 101:200].sum() > 300  # no room above: the label goes inside the box, within the image
    assert top[40:79, 102:199].sum() == 0


def test_style_grows_with_the_image():
    small, large = style(200, 200), style(3000, 4000)
    assert small[0] >= 1 and small[1] >= 0.35
    assert large[0] > small[0] and large[1] > small[1]


def test_small_images_can_be_upscaled_for_legible_labels():
    img = np.zeros((100, 200), np.uint8)  # grayscale input
    out = draw_detections(img, _dets([[10, 10, 30, 20]], [0]), min_side=400)
    assert out.shape == (400, 800, 3)
    assert tuple(out[60, 40]) == class_color(0)  # box corner (10, 10) -> (40, 40) scaled; left edge at x=40


def test_highlight_draws_the_chosen_boxes_thicker():
    img = np.zeros((400, 400, 3), np.uint8)
    dets = _dets([[40, 100, 160, 300], [220, 100, 360, 300]], [0, 0])
    out = draw_detections(img, dets, highlight={1})
    color = np.array(class_color(0))
    width = [int((out[200, x0 - 10 : x0 + 10] == color).all(-1).sum()) for x0 in (40, 220)]
    assert width[1] > width[0] >= 1


def test_class_colours_are_distinct():
    colors = [np.array(class_color(i), float) for i in range(20)]
    assert min(np.abs(a - b).sum() for a, b in itertools.combinations(colors, 2)) > 30


def test_non_ascii_names_fall_back_and_empty_detections_copy():
    img = np.full((120, 160, 3), 30, np.uint8)
    plain = draw_detections(img, _dets([[20, 40, 100, 100]], [0], names=("划痕",)))
    named = draw_detections(img, _dets([[20, 40, 100, 100]], [0], names=("划痕",)), names=["class 0"])
    np.testing.assert_array_equal(plain, named)  # the CJK name is drawn as "class 0", not as "??"
    empty = draw_detections(img, Detections.empty(["a"]))
    np.testing.assert_array_equal(empty, img)


def test_heatmap_overlay():
    img = np.full((60, 80, 3), 128, np.uint8)
    heat = np.zeros((30, 40), np.float32)
    heat[:, 20:] = 1.0
    out = overlay_heatmap(img, heat, alpha=0.5)
    assert out.shape == (60, 80, 3)
    assert out[30, 70, 0] > out[30, 70, 2] and out[30, 10, 2] > out[30, 10, 0]  # red where hot, blue where cold


@pytest.mark.parametrize("suffix, expect", [(".jpg", ".jpg"), (".npy", ".png"), (".TIF", ".tif")])
def test_encode_image_round_trip(suffix, expect):
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, :, 0] = 255  # pure red in RGB
    data, got = encode_image(img, suffix)
    assert got == expect
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert back.shape == (20, 30, 3) and back[10, 15, 2] > 200 and back[10, 15, 0] < 50  # BGR on disk
