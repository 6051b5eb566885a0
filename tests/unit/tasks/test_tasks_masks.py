"""Mask measurements in the VQA facts and the offline answers ("a 14 mm long crack at the top-left").

300 x 300 image: #0 crack, box [10, 10, 160, 20], mask a 1-px line of 141 pixels (row 15, columns 10-150: length
140 px, width 1, area 141); #1 hole, box [100, 100, 140, 140], mask a disc of radius 10 at (120, 120) (317 pixels,
width 2 * sqrt(101) - 1 = 19.1, a skeleton of at most 2 px).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import rtvp.predict.predictor as predictor_module
from rtvp.cli.main import app
from rtvp.errors import ConfigError
from rtvp.structures import Detections
from rtvp.tasks.facts import facts_from_detections, mm_text
from rtvp.tasks.vqa import OfflineAnswerer

BOXES = [[10, 10, 160, 20], [100, 100, 140, 140]]


def _masks() -> np.ndarray:
    m = np.zeros((2, 300, 300), bool)
    m[0, 15, 10:151] = True
    yy, xx = np.mgrid[:300, :300]
    m[1] = (yy - 120) ** 2 + (xx - 120) ** 2 <= 100
    return m


def _facts(px_size: float | None = None, masks: bool = True):
    dets = Detections(BOXES, [0.9, 0.7], [0, 1], ["crack", "hole"], mask=_masks() if masks else None)
    return facts_from_detections(dets, 300, 300, px_size=px_size)


def _answer(question: str, facts) -> str:
    return OfflineAnswerer().answer(question, facts).text


def test_box_facts_carry_the_mask_measurements():
    crack, hole = _facts().boxes
    assert crack.mask == {"area_px": 141.0, "length_px": 140.0, "width_px": 1.0}
    assert (hole.mask["area_px"], hole.mask["width_px"]) == (317.0, 19.1) and hole.mask["length_px"] <= 2
    assert (crack.extent(), hole.extent()) == ("140 px long", "19 px wide")  # length >= 3 x width -> long
    assert crack.mask_sizes() == "140 px long, 1 px wide, 141 px²"
    mm = _facts(px_size=0.1).box(0)
    assert mm.mask == {"area_px": 141.0, "length_px": 140.0, "width_px": 1.0, "area_mm": 1.41, "length_mm": 14.0,
                       "width_mm": 0.1}
    assert (mm.extent(), mm.mask_sizes()) == ("14 mm long", "14 mm long, 0.1 mm wide, 1.4 mm²")


def test_facts_json_has_masks_only_when_there_are_masks():
    with_masks, without = _facts(0.1), _facts(0.1, masks=False)
    data = json.loads(with_masks.to_json())
    assert data == with_masks.to_dict() and data["boxes"][0]["mask"]["length_mm"] == 14.0
    assert "pixel size 0.1 mm; area in mm²" in with_masks.notes[-1]
    plain = without.to_dict()
    assert all("mask" not in b for b in plain["boxes"]) and not any("mask" in n for n in without.notes)
    assert plain == facts_from_detections(Detections(BOXES, [0.9, 0.7], [0, 1], ["crack", "hole"]), 300,
                                          300).to_dict()  # px_size alone changes nothing


def test_where_names_the_length_or_width():
    text = _answer("where are the defects?", _facts(px_size=0.1))
    assert text.startswith("a 14 mm long crack [#0] at the top-left, near the left and top edges (x 10-160")
    assert "a 1.9 mm wide hole [#1] at the center" in text
    assert "a 140 px long crack [#0] at the top-left" in _answer("where is the crack?", _facts())


def test_size_and_describe_use_the_mask():
    assert _answer("how long is the crack?", _facts(px_size=0.1)) == (
        "crack [#0]: 14 mm long, 0.1 mm wide, 1.4 mm² (mask), box 150×10 px (1.67% of the image), medium, elongated.")
    a = OfflineAnswerer().answer("how large is the hole?", _facts())
    assert a.text.startswith("hole [#1]: ") and "19 px wide, 317 px² (mask), box 40×40 px" in a.text
    assert a.facts_used == ["boxes[#1].mask", "boxes[#1].size"]
    text = _answer("describe the image", _facts(px_size=0.1))
    assert "1 crack (medium elongated, 14 mm long, at the top-left, near the left and top edges [#0])" in text


def test_without_masks_the_sentences_are_unchanged():
    facts = _facts(masks=False)
    assert _answer("where is the crack?", facts) == "crack [#0] at the top-left, near the left and top edges " \
                                                    "(x 10-160, y 10-20 px)."
    assert _answer("how long is the crack?", facts) == ("crack [#0]: 150×10 px (1.67% of the image), medium, "
                                                        "elongated.")
    assert "(medium elongated at the top-left" in _answer("describe", facts)


def test_largest_compares_mask_areas():
    masks = np.zeros((2, 300, 300), bool)
    masks[0, 5, 0:10] = True  # big box, 10-pixel mask
    masks[1, 250:290, 250:290] = True  # small box, 1600-pixel mask
    dets = Detections([[0, 0, 200, 200], [250, 250, 290, 290]], [0.9, 0.8], [0, 0], ["crack"])
    assert OfflineAnswerer().answer("how big is the largest crack?",
                                    facts_from_detections(dets, 300, 300)).box_ids == [0]  # box areas
    dets.mask = masks
    assert OfflineAnswerer().answer("how big is the largest crack?",
                                    facts_from_detections(dets, 300, 300)).box_ids == [1]  # mask areas


@pytest.mark.parametrize(("value", "text"), [(14.2, "14"), (140.0, "140"), (3.46, "3.5"), (0.347, "0.35"),
                                             (0.0, "0")])
def test_mm_text(value, text):
    assert mm_text(value) == text


def test_bad_px_size_is_a_clear_error():
    with pytest.raises(ConfigError, match="px_size must be the pixel size in millimetres per pixel"):
        _facts(px_size=-1.0)


def test_ask_cli_px_size(monkeypatch, fake_predictor, tmp_path):
    dets = Detections(BOXES, [0.9, 0.7], [0, 1], ["crack", "hole"], mask=_masks())
    made = []

    class Patched(fake_predictor):
        def __init__(self, weights, **kw):
            super().__init__({("img.png", None): dets}, vocabulary=["crack", "hole"])
            made.append(kw)

    monkeypatch.setattr(predictor_module, "Predictor", Patched)
    monkeypatch.delenv("RTVP_LLM_URL", raising=False)
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((300, 300, 3), np.uint8))
    res = CliRunner().invoke(app, ["ask", str(image), "where is the crack?", "--weights", "w.pt", "--px-size", "0.1"])
    assert res.exit_code == 0, res.output
    assert "a 14 mm long crack [#0] at the top-left" in res.output
    assert "mask 14 mm long, 0.1 mm wide, 1.4 mm²" in res.output  # the cited box's line
    res = CliRunner().invoke(app, ["ask", str(image), "where?", "--weights", "w.pt", "--px-size", "0"])
    assert isinstance(res.exception, ConfigError) and "--px-size must be" in str(res.exception)
    assert len(made) == 1  # the bad value stopped before the model was built
