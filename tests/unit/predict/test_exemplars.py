"""Exemplar prompts: region pooling (hand-checked), the file format's errors, and "find more like this box"."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from predict_toys import (
    expert_ckpt,
    one_thread,  # noqa: F401 - autouse fixture
    rtvpnet_ckpt,
)
from rtvp.errors import ConfigError, DataError
from rtvp.models.decode import make_anchors
from rtvp.predict.exemplars import UNNAMED, Exemplar, load_exemplars, pool_regions
from rtvp.predict.predictor import Predictor


def test_pool_regions_averages_the_anchors_inside_and_falls_back_to_the_nearest() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0], [4.0, 12.0], [28.0, 28.0]])
    boxes = torch.tensor([[0.0, 0.0, 16.0, 8.0],     # anchors 0 and 1: mean (0.5, 0.5) -> (0.707, 0.707)
                          [2.0, 10.0, 6.0, 14.0],    # anchor 2 alone
                          [20.0, 20.0, 21.0, 21.0]])  # no centre inside: nearest to (20.5, 20.5) is anchor 3
    out = pool_regions(emb, points, boxes)
    r = 2 ** -0.5
    torch.testing.assert_close(out, torch.tensor([[r, r], [1.0, 0.0], [0.0, 1.0]]))


def test_iou_pooling_weights_the_anchors_whose_predicted_boxes_match() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]) / torch.tensor([[1.0], [1.0], [2**0.5], [1.0]])
    points = torch.tensor([[4.0, 4.0], [8.0, 4.0], [12.0, 4.0], [40.0, 40.0]])  # anchor 3 lies outside the box
    box = torch.tensor([[0.0, 0.0, 16.0, 8.0]])
    pred = torch.tensor([[0.0, 0.0, 16.0, 8.0],    # IoU 1
                         [0.0, 0.0, 8.0, 8.0],     # IoU 0.5
                         [100.0, 100.0, 110.0, 110.0],  # IoU 0: never in the top 2
                         [0.0, 0.0, 16.0, 8.0]])   # IoU 1 but its centre is outside: excluded
    out = pool_regions(emb, points, box, pred, topk=2)
    expected = torch.nn.functional.normalize(1.0 * emb[0] + 0.5 * emb[1], dim=0)
    torch.testing.assert_close(out[0], expected)


def _scene(size: int, x: int, y: int) -> np.ndarray:
    """Grey image with one textured 24x24 object at (x, y): a checkerboard of 6-px squares in red and blue."""
    img = np.full((size, size, 3), 128, np.uint8)
    yy, xx = np.mgrid[0:24, 0:24]
    board = ((yy // 6 + xx // 6) % 2).astype(bool)
    patch = np.where(board[..., None], np.array([220, 30, 30], np.uint8), np.array([30, 30, 220], np.uint8))
    img[y : y + 24, x : x + 24] = patch
    return img


def test_exemplar_from_a_box_finds_the_same_object_in_a_shifted_copy(tmp_path) -> None:
    """The prompt pooled from the object's box in one image scores highest on the object in a shifted copy."""
    src, shifted = _scene(128, 20, 20), _scene(128, 84, 52)  # shift by (64, 32): whole strides
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(src, cv2.COLOR_RGB2BGR))
    pred = Predictor(rtvpnet_ckpt(imgsz=128), conf=0.0, max_det=1)
    anchors, _ = make_anchors([(16, 16), (8, 8), (4, 4)], [8, 16, 32])  # 128 px: strides 8, 16, 32
    for ex in (Exemplar(tmp_path / "a.png", (20, 20, 44, 44)), Exemplar(src, (20, 20, 44, 44), "spur")):
        det = pred.predict([shifted], exemplars=[ex])[0]
        ax, ay = (float(v) for v in anchors[int(det.data["anchor"][0])])
        assert 84 <= ax <= 108 and 52 <= ay <= 76, (ax, ay)
        assert det.class_names == [ex.name or UNNAMED]


def test_text_prompts_come_first_and_expert_checkpoints_are_refused(tmp_path) -> None:
    pred = Predictor(rtvpnet_ckpt(imgsz=64), conf=0.0, max_det=5)
    img = _scene(64, 10, 10)
    shots = [Exemplar(img, (10, 10, 34, 34), "spur"), Exemplar(img, (8, 8, 36, 36), "spur"),
             Exemplar(img, (0, 0, 9, 9))]
    det = pred.predict([img], prompts=["scratch"], exemplars=shots)[0]
    assert det.class_names == ["scratch", "spur", UNNAMED]
    assert pred._active.text.shape[0] == 3
    with pytest.raises(ConfigError, match="RTVPNet checkpoint"):
        Predictor(expert_ckpt(imgsz=64)).predict([img], exemplars=shots)
    with pytest.raises(DataError, match=r"exemplar \[0\]: box .* outside its 64x64 image"):
        pred.predict([img], exemplars=[Exemplar(img, (70, 70, 80, 80))])


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "cannot read the exemplar file"),
    ("[]", "non-empty JSON list"),
    ('[{"image": "a.png"}]', r"exemplar \[0\]: 'box' must be \[x1, y1, x2, y2\]"),
    ('[{"image": "a.png", "box": [5, 5, 1, 9]}]', "x2 <= x1"),
    ('[{"image": "missing.png", "box": [0, 0, 1, 1]}]', "missing.png not found"),
    ('[{"image": "a.png", "box": [0, 0, 1, 1], "label": "x"}]', r"unknown field\(s\) \['label'\]"),
    ('[{"image": "a.png", "box": [0, 0, 1, 1], "name": ""}]', "'name' must be a non-empty string"),
])
def test_exemplar_file_errors_name_the_entry_and_field(tmp_path, content: str, message: str) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    path = tmp_path / "ex.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_exemplars(path)


def test_exemplar_file_resolves_images_beside_it(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    path = tmp_path / "sub" / "ex.json"
    path.write_text(json.dumps([{"image": "a.png", "box": [1, 2, 5, 6.5], "name": " spur "}]), encoding="utf-8")
    assert load_exemplars(path) == [Exemplar(tmp_path / "sub" / "a.png", (1.0, 2.0, 5.0, 6.5), "spur")]
