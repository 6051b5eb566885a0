import numpy as np
import pytest

from rtvp.boxes import iou_xywh, iou_xyxy, xywh_to_xyxy


def test_iou_xyxy_matches_hand_values():
    ious = iou_xyxy(np.array([[0, 0, 10, 10.0]]), np.array([[2, 0, 12, 10.0], [20, 20, 30, 30.0], [0, 0, 10, 10.0]]))
    assert ious == pytest.approx(np.array([[8 / 12, 0.0, 1.0]]))


def test_iou_xywh_equals_xyxy_after_conversion():
    a = np.array([[1, 2, 4, 6.0], [0, 0, 2, 2.0]])
    b = np.array([[3, 4, 4, 4.0]])
    assert xywh_to_xyxy(a).tolist() == [[1, 2, 5, 8], [0, 0, 2, 2]]
    # box 0 [1,2,5,8] vs [3,4,7,8]: inter 2x4 = 8, union 24 + 16 - 8 = 32
    assert iou_xywh(a, b) == pytest.approx(np.array([[8 / 32], [0.0]]))


def test_degenerate_and_empty_inputs():
    assert iou_xyxy(np.zeros((0, 4)), np.ones((3, 4))).shape == (0, 3)
    assert iou_xyxy([[5, 5, 5, 9]], [[0, 0, 10, 10]]) == pytest.approx(np.array([[0.0]]))  # zero-width box
