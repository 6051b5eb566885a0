"""Masks downstream of the predictor: predictions.json fields, ``--px-size``, and mask overlays on drawn images.

A stub predictor streams hand-made ``Detections`` with masks (no model): a 5 x 240 strip (class 0) and a 1-px diagonal
of 30 pixels (class 1) on a 160 x 300 grey image.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from rtvp.cli.main import app
from rtvp.errors import ConfigError
from rtvp.masks import decode_rle, measure_mask
from rtvp.predict.draw import MASK_ALPHA, class_color, draw_detections
from rtvp.predict.outputs import save_predictions
from rtvp.predict.predictor import Prediction
from rtvp.structures import Detections
from rtvp.vocabulary import Vocabulary

H, W, GREY = 160, 300, 100
NAMES = ["crack", "hole"]


def _masks() -> np.ndarray:
    m = np.zeros((2, H, W), bool)
    m[0, 100:105, 20:260] = True  # strip: area 1200, width 5
    k = np.arange(30)
    m[1, 25 + k, 105 + k] = True  # diagonal: area 30, length 29 * sqrt(2), width 1
    return m


def _dets(with_masks: bool = True) -> Detections:
    return Detections([[20, 100, 260, 105], [100, 20, 140, 60]], [0.9, 0.6], [0, 1], list(NAMES),
                      mask=_masks() if with_masks else None)


class StubPredictor:
    """The part of ``Predictor`` that ``save_predictions`` uses, streaming fixed detections for every source."""

    def __init__(self, dets: Detections) -> None:
        self.dets, self.skipped, self.streamed = dets, [], 0

    def set_prompts(self, prompts):
        return Vocabulary.default().resolve_all(list(prompts or NAMES))

    def stream(self, sources, prompts=None, save_maps=False):
        for src in sources:
            self.streamed += 1
            yield Prediction(src, str(src), np.full((H, W, 3), GREY, np.uint8), self.dets)


def _sources(tmp_path, n: int = 1):
    paths = []
    for i in range(n):
        paths.append(tmp_path / f"img{i}.png")
        cv2.imwrite(str(paths[-1]), np.full((H, W, 3), GREY, np.uint8))
    return paths


# ------------------------------------------------------------------------------------------- predictions.json
def test_entries_carry_rle_and_measurements(tmp_path):
    summary = save_predictions(StubPredictor(_dets()), _sources(tmp_path), tmp_path / "out")
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert summary.masks and entries == summary.results
    assert [list(e)[-4:] for e in entries] == [["segmentation", "area_px", "length_px", "width_px"]] * 2
    masks = _masks()
    for e, m in zip(entries, masks, strict=True):
        assert (decode_rle(e["segmentation"]) == m).all()  # RLE of the mask in original pixels
    strip, diag = entries
    assert (strip["area_px"], strip["width_px"]) == (1200.0, 5.0)
    assert strip["length_px"] == round(measure_mask(masks[0])["length_px"], 2) and 235 <= strip["length_px"] <= 240
    assert (diag["area_px"], diag["width_px"], diag["length_px"]) == (30.0, 1.0, round(29 * math.sqrt(2), 2))
    assert not any(k.endswith("_mm") for e in entries for k in e)


def test_px_size_adds_millimetre_twins(tmp_path):
    save_predictions(StubPredictor(_dets()), _sources(tmp_path), tmp_path / "out", px_size=0.1)
    strip, diag = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert (strip["area_mm"], strip["width_mm"]) == (12.0, 0.5)  # 1200 px * 0.01 mm^2; 5 px * 0.1 mm
    assert strip["length_mm"] == pytest.approx(strip["length_px"] * 0.1, abs=1e-3)
    assert (diag["area_mm"], diag["width_mm"]) == (0.3, 0.1)
    assert diag["length_mm"] == pytest.approx(29 * math.sqrt(2) * 0.1, abs=1e-6)


def test_without_masks_entries_are_unchanged(tmp_path):
    summary = save_predictions(StubPredictor(_dets(False)), _sources(tmp_path), tmp_path / "out", px_size=0.1)
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert not summary.masks
    assert [list(e) for e in entries] == [["image_id", "file_name", "category_id", "category_name", "bbox",
                                           "score"]] * 2


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan")])
def test_bad_px_size_fails_before_inference(tmp_path, bad):
    stub = StubPredictor(_dets())
    with pytest.raises(ConfigError, match=r"px_size \(--px-size\) must be the pixel size in millimetres per pixel"):
        save_predictions(stub, _sources(tmp_path), tmp_path / "out", px_size=bad)
    assert stub.streamed == 0 and not (tmp_path / "out" / "predictions.json").exists()


def test_cli_px_size(tmp_path, monkeypatch):
    import rtvp.deploy.runners as runners

    stub = StubPredictor(_dets())
    monkeypatch.setattr(runners, "open_predictor", lambda *a, **k: stub)
    runner, src = CliRunner(), _sources(tmp_path)[0]
    res = runner.invoke(app, ["predict", "--weights", str(tmp_path / "w.pt"), "--source", str(src), "--out",
                              str(tmp_path / "out"), "--px-size", "0.1"])
    assert res.exit_code == 0, res.output
    strip = json.loads((tmp_path / "out" / "predictions.json").read_text())[0]
    assert (strip["area_px"], strip["area_mm"], strip["width_mm"]) == (1200.0, 12.0, 0.5)
    drawn = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "images" / "img0.png")), cv2.COLOR_BGR2RGB)
    assert drawn.shape[:2] == (480, 900)  # upscaled to the 480 px drawing minimum: factor 3
    expect = np.round(GREY * (1 - MASK_ALPHA) + np.array(class_color(0)) * MASK_ALPHA)
    np.testing.assert_array_equal(drawn[3 * 102, 3 * 200], expect)  # inside the strip's mask

    stub.dets = _dets(False)
    res = runner.invoke(app, ["predict", "--weights", "w.pt", "--source", str(src), "--out", str(tmp_path / "o2"),
                              "--px-size", "0.1"])
    assert res.exit_code == 0 and "no masks" in res.output
    res = runner.invoke(app, ["predict", "--weights", "w.pt", "--source", str(src), "--out", str(tmp_path / "o3"),
                              "--px-size", "-1"])
    assert isinstance(res.exception, ConfigError) and "--px-size must be" in str(res.exception)
    assert stub.streamed == 2  # the bad value stopped the run before any image


def test_cli_mask_thr_reaches_the_predictor(tmp_path, monkeypatch):
    import rtvp.deploy.runners as runners

    opened = []
    monkeypatch.setattr(runners, "open_predictor", lambda *a, **k: opened.append(k) or StubPredictor(_dets()))
    runner, src = CliRunner(), _sources(tmp_path)[0]
    args = ["predict", "--weights", "w.pt", "--source", str(src), "--out"]
    assert runner.invoke(app, [*args, str(tmp_path / "o1")]).exit_code == 0
    assert runner.invoke(app, [*args, str(tmp_path / "o2"), "--mask-thr", "0.3"]).exit_code == 0
    assert [k["mask_thr"] for k in opened] == [0.5, 0.3]
    res = runner.invoke(app, [*args, str(tmp_path / "o3"), "--mask-thr", "1"])
    assert isinstance(res.exception, ConfigError) and "--mask-thr must be" in str(res.exception)
    assert len(opened) == 2  # refused before the model opened


# ---------------------------------------------------------------------------------------------------- drawing
def test_overlay_changes_only_mask_pixels_in_the_box_colour():
    img = np.full((H, W, 3), GREY, np.uint8)
    plain, masked = draw_detections(img, _dets(False)), draw_detections(img, _dets())
    changed = (plain != masked).any(-1)
    union = _masks().any(0)
    assert changed.any() and not (changed & ~union).any()  # nothing changes outside the masks
    for (y, x), cls in (((102, 200), 0), ((40, 120), 1)):  # mask pixels away from outlines and labels
        expect = np.round(GREY * (1 - MASK_ALPHA) + np.array(class_color(cls)) * MASK_ALPHA)
        np.testing.assert_array_equal(masked[y, x], expect)
    assert (masked[150, 10] == GREY).all() and not img[img != GREY].size  # background and input untouched


def test_faded_detections_get_a_lighter_mask():
    out = draw_detections(np.full((H, W, 3), GREY, np.uint8), _dets(), highlight={1})
    alpha = MASK_ALPHA / 2  # detection 0 is not highlighted
    np.testing.assert_array_equal(out[102, 200], np.round(GREY * (1 - alpha) + np.array(class_color(0)) * alpha))


def test_upscaled_drawing_scales_the_masks():
    img = np.full((H, W, 3), GREY, np.uint8)
    plain, masked = draw_detections(img, _dets(False), min_side=320), draw_detections(img, _dets(), min_side=320)
    assert masked.shape == (320, 600, 3)
    union = cv2.resize(_masks().any(0).astype(np.uint8), (600, 320), interpolation=cv2.INTER_NEAREST).astype(bool)
    changed = (plain != masked).any(-1)
    assert changed[204, 400] and not (changed & ~union).any()


def test_mask_of_another_size_is_a_clear_error():
    dets = Detections([[0, 0, 5, 5]], [0.9], [0], ["crack"], mask=np.ones((1, 10, 10), bool))
    with pytest.raises(ValueError, match=r"dets.mask is 10x10 \(H x W\) but the image is 160x300"):
        draw_detections(np.zeros((H, W, 3), np.uint8), dets)
