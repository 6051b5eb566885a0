"""Integration: the real Predictor on a random tiny RTVPNet checkpoint (hash text encoder, CPU, 64 px) through
``rtvp ground`` / ``rtvp ask`` and the grounding evaluator. Checks the wiring, not the (untrained) accuracy."""

import json
import warnings

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rtvp import __version__
from rtvp.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from rtvp.cli.main import app
from rtvp.config import to_dict
from rtvp.models import ModelConfig, build_model
from rtvp.predict.predictor import Predictor
from rtvp.tasks.grounding import evaluate_grounding, parse_query, rank


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    cfg = ModelConfig(scale="tiny", sam=False, edp=False, text_encoder="hash")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, 16)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint({"version": __version__, "format": CHECKPOINT_FORMAT, "arch": "rtvpnet",
                     "model_config": to_dict(cfg), "model": model.state_dict(), "ema": None,
                     "vocabulary": ["crack on steel", "hole on steel"], "text_encoder": "hash", "text_dim": 16,
                     "train_config": {"imgsz": 64}}, path)
    return path


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("RTVP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RTVP_LLM_URL", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64 px toy model: one thread is fastest on a shared CPU
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8))
    return path


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_ground_and_ask_with_real_predictor(weights, image, tmp_path):
    out = tmp_path / "g.png"
    data = json.loads(_run("ground", image, "crack near the left edge", "--weights", weights, "--conf", "0.0",
                           "--top-k", "3", "--json", "--out", out))
    boxes = data["boxes"]
    assert len(boxes) == 3 and [b["score"] for b in boxes] == sorted((b["score"] for b in boxes), reverse=True)
    for b in boxes:
        assert 0 < b["prior"] <= 1 and b["score"] == pytest.approx(b["confidence"] * b["prior"], rel=2e-3)
    # same answer as ranking the predictor's own single-prompt detections
    dets = Predictor(weights, conf=0.0).predict([image], prompts=["crack"])[0]
    assert [b.index for b in rank(dets, 128, 96, parse_query("crack near the left edge").constraints, 3)] == \
        [b["index"] for b in boxes]
    assert cv2.imread(str(out)).shape == (96, 128, 3)

    out = tmp_path / "a.png"
    data = json.loads(_run("ask", image, "how many cracks?", "--weights", weights, "--prompts", "crack,孔洞",
                           "--conf", "0.0", "--json", "--out", out))
    facts, answer = data["facts"], data["answer"]
    cracks = [b["id"] for b in facts["boxes"] if b["defect"] == "crack"]
    assert [p["defect"] for p in facts["vocabulary"]] == ["crack", "hole"]  # 孔洞 resolved to hole
    assert answer["box_ids"] == cracks and answer["text"].startswith(f"{len(cracks)} crack")
    assert out.is_file()


def test_grounding_evaluator_with_real_predictor(weights, tiny_bench):
    for name in ("a.png", "b.png"):
        (tiny_bench / "images").mkdir(exist_ok=True)
        cv2.imwrite(str(tiny_bench / "images" / name), np.full((300, 300, 3), 128, np.uint8))
    m = evaluate_grounding(Predictor(weights, conf=0.0), tiny_bench, "val", "closed")
    assert m["queries"] == 3 and 0.0 <= m["acc@0.5"] <= 1.0 and set(m["per_type"]) == {"crack", "hole"}
