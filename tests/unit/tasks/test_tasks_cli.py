"""``rtvp ground`` / ``ground-eval`` / ``ask`` wiring with a fake Predictor and a fake drawer (no model)."""

import json
import sys
import types

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import rtvp.predict.predictor as predictor_module
from rtvp.cli.main import app
from rtvp.structures import Detections


@pytest.fixture
def fakes(monkeypatch, fake_predictor, scene_dets, grounding_table):
    """Patch Predictor (records its kwargs) and draw_detections (records what it drew)."""
    made, drawn, names_seen = [], [], []
    table = {("img.png", "crack"): Detections([[250, 100, 290, 140], [0, 120, 40, 160]], [0.9, 0.5], [0, 0],
                                              ["crack"]),
             ("img.png", None): scene_dets, ("img.png", "crack,hole"): scene_dets, **grounding_table}

    class Patched(fake_predictor):
        def __init__(self, weights, **kw):
            super().__init__(table, vocabulary=["crack on magnetic tile", "hole in wood"])
            made.append(kw)

        def predict(self, sources, prompts=None, save_maps=False):
            key = ",".join(prompts) if prompts and len(prompts) > 1 else None
            if key:
                return [scene_dets]
            return super().predict(sources, prompts, save_maps)

    def draw(image, dets, highlight=None, names=None):
        drawn.append((image.shape, len(dets), set(highlight or ())))
        names_seen.append(names)
        return image

    monkeypatch.setattr(predictor_module, "Predictor", Patched)
    monkeypatch.setitem(sys.modules, "rtvp.predict.draw", types.SimpleNamespace(draw_detections=draw))
    return made, drawn, names_seen


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), np.zeros((300, 300, 3), np.uint8))
    return path


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_ground_cli(fakes, image, tmp_path):
    made, drawn, names = fakes
    out = tmp_path / "o.png"
    data = json.loads(_run("ground", image, "crack near the left edge", "--weights", "w.pt", "--json", "--out", out))
    assert data["phrase"] == "crack" and data["constraints"] == "near the left edge"
    assert [b["index"] for b in data["boxes"]] == [1] and data["boxes"][0]["score"] == 0.5
    assert made == [{"device": "cpu", "imgsz": None, "conf": 0.05}] and out.is_file()
    assert drawn == [((300, 300, 3), 1, {0})] and names == [["crack"]]
    text = _run("ground", image, "crack", "--weights", "w.pt", "--top-k", "2")
    assert "defect phrase 'crack'" in text and "1. crack  score 0.9" in text and "2. crack" in text


def test_ground_eval_cli(fakes, tiny_bench):
    text = _run("ground-eval", "--data", tiny_bench, "--weights", "w.pt")
    assert "Acc@0.5 0.667 over 3 queries" in text and "with location words 0.500 over 2" in text
    data = json.loads(_run("ground-eval", "--data", tiny_bench, "--weights", "w.pt", "--json"))
    assert data["correct"] == 2 and fakes[0][-1]["conf"] == 0.01


def test_ask_cli_offline(fakes, image, tmp_path, monkeypatch):
    monkeypatch.delenv("RTVP_LLM_URL", raising=False)
    made, drawn, names = fakes
    out = tmp_path / "a.png"
    data = json.loads(_run("ask", image, "how many cracks?", "--weights", "w.pt", "--json", "--out", out))
    assert data["answer"]["box_ids"] == [0, 2] and data["answer"]["answerer"] == "offline"
    assert data["answer"]["text"] == "2 cracks [#0, #2]." and len(data["facts"]["boxes"]) == 3
    assert drawn[-1] == ((300, 300, 3), 3, {0, 2}) and out.is_file()  # all boxes drawn, the cited ones highlighted
    assert names[-1] == ["crack", "hole"]  # canonical (ASCII) names for the drawing
    text = _run("ask", image, "what defects are there and why?", "--weights", "w.pt", "--prompts", "crack,hole")
    assert "Likely causes of crack [#0, #2]" in text and "[#1] hole in wood  conf 0.50" in text


def test_ask_cli_llm(fakes, image, llm_stub, monkeypatch):
    llm_stub.default = (200, "One hole at the left edge [#1].", 0.0)
    monkeypatch.setenv("MY_KEY", "sk-x")
    data = json.loads(_run("ask", image, "where is the hole?", "--weights", "w.pt", "--llm-url", llm_stub.url,
                           "--llm-model", "m", "--llm-key-env", "MY_KEY", "--json"))
    assert data["answer"]["answerer"] == "llm:m" and data["answer"]["box_ids"] == [1]
    assert llm_stub.requests[-1]["headers"]["Authorization"] == "Bearer sk-x"
    monkeypatch.setenv("RTVP_LLM_URL", llm_stub.url)
    monkeypatch.setenv("RTVP_LLM_MODEL", "env-model")
    assert "(llm:env-model;" in _run("ask", image, "where is the hole?", "--weights", "w.pt")
    assert "(offline;" in _run("ask", image, "where is the hole?", "--weights", "w.pt", "--offline")
