"""ONNX export parity: raw outputs (max abs diff) and identical boxes after NMS, outside and inside the graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms as tv_batched_nms
from typer.testing import CliRunner

from predict_toys import (
    one_thread,  # noqa: F401 - autouse fixture
    rtvpnet_ckpt,
    write_images,
)
from rtvp.cli.main import app
from rtvp.deploy.export import ExportModule
from rtvp.deploy.onnx_runner import OnnxPredictor, batched_nms
from rtvp.errors import ConfigError
from rtvp.imaging import letterbox, read_image
from rtvp.predict.loading import bind_prompts, build_encoder, load_model
from rtvp.predict.predictor import Predictor

PROMPTS = ["划痕", "hole in wood", "crack on glass"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One CLI export (tiny RTVPNet, hash encoder, 64 px, NMS inside) shared by the tests: ~20 s of tracing."""
    root = tmp_path_factory.mktemp("onnx")
    weights = root / "w.pt"
    rtvpnet_ckpt(weights, imgsz=64)
    out = root / "model.onnx"
    res = CliRunner().invoke(app, ["export", "--weights", str(weights), "--format", "onnx", "--out", str(out),
                                   "--prompts", ",".join(PROMPTS), "--nms", "--conf", "0.05", "--iou", "0.6"])
    assert res.exit_code == 0, res.output
    images = write_images(root / "imgs", [(100, 60), (64, 64), (30, 90), (120, 50)])
    return weights, out, images


def test_sidecar_records_the_baked_vocabulary(exported):
    _, out, _ = exported
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["class_names"] == PROMPTS and side["texts"] == ["scratch", "hole in wood", "crack on glass"]
    assert side["canonical"][0] == "scratch" and side["imgsz"] == 64 and side["channels"] == 3
    assert side["nms"] is True and side["outputs"] == ["boxes", "scores", "detections"] and side["conf"] == 0.05


def test_raw_outputs_match_pytorch_with_a_dynamic_batch(exported, record_property):
    weights, out, images = exported
    model, meta = load_model(weights)
    prompted, _ = bind_prompts(model, meta, PROMPTS, lambda: build_encoder(meta))
    module = ExportModule(prompted).eval()
    runner = OnnxPredictor(out)
    worst = 0.0
    for batch in (images[:1], images[1:4]):  # batch 1 and batch 3 through the same graph
        x = np.stack([letterbox(read_image(p), 64)[0] for p in batch]).transpose(0, 3, 1, 2) / np.float32(255)
        boxes, scores, _ = runner.raw(x)
        with torch.no_grad():
            ref_boxes, ref_scores = module(torch.from_numpy(x.astype(np.float32)))
        assert boxes.shape == (len(batch), 84, 4) and scores.shape == (len(batch), 84, 3)
        diffs = np.abs(boxes - ref_boxes.numpy()).max(), np.abs(scores - ref_scores.numpy()).max()
        worst = max(worst, *map(float, diffs))
    record_property("max_abs_diff", worst)
    print(f"ONNX vs PyTorch raw outputs: max abs diff {worst:.2e}")
    assert worst < 1e-3


@pytest.mark.parametrize("in_graph", [False, True])
def test_identical_boxes_after_nms(exported, in_graph):
    weights, out, images = exported
    runner = OnnxPredictor(out, conf=0.05, iou=0.6, max_det=50)
    runner.in_graph_nms = in_graph
    ref = Predictor(weights, conf=0.05, iou=0.6, max_det=50).predict(images, prompts=PROMPTS)
    got = runner.predict(images)
    assert sum(len(d) for d in ref) > 20
    for a, b in zip(got, ref, strict=True):
        assert a.class_names == b.class_names == PROMPTS
        assert a.class_id.tolist() == b.class_id.tolist()
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)
        if not in_graph:
            assert a.data["anchor"].tolist() == b.data["anchor"].tolist()


def test_runner_input_handling(exported, tmp_path):
    _, out, images = exported
    runner = OnnxPredictor(out)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"nope")
    dets = runner.predict([images[0], broken, np.zeros((20, 30), np.uint8)])
    assert len(dets) == 2 and runner.skipped[0][0] == str(broken)
    with pytest.raises(ConfigError, match="baked into this ONNX file"):
        runner.predict(images[:1], prompts=["rust"])
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(out.read_bytes())
    with pytest.raises(ConfigError, match="sidecar JSON not found"):
        OnnxPredictor(lonely)


def test_numpy_nms_equals_torchvision():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 300))
        xy = rng.uniform(0, 100, (n, 2)).astype(np.float32)
        boxes = np.c_[xy, xy + rng.uniform(1, 40, (n, 2)).astype(np.float32)]
        scores = rng.random(n).astype(np.float32)
        classes = rng.integers(0, 4, n)
        ref = tv_batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.5)
        assert batched_nms(boxes, scores, classes, 0.5).tolist() == ref.tolist()


def test_export_rejects_bad_requests(tmp_path):
    weights = tmp_path / "w.pt"
    rtvpnet_ckpt(weights)
    res = CliRunner().invoke(app, ["export", "--weights", str(weights), "--format", "tflite", "--out",
                                   str(tmp_path / "m.tflite")])
    assert isinstance(res.exception, ConfigError) and "use one of ['onnx', 'openvino']" in str(res.exception)
    res = CliRunner().invoke(app, ["export", "--weights", str(weights), "--out", str(tmp_path / "m.onnx"),
                                   "--imgsz", "100"])
    assert isinstance(res.exception, ConfigError) and "multiple of 32" in str(res.exception)
    assert not (tmp_path / "m.onnx").exists()
