"""OpenVINO IR export (extra ``rtvp[openvino]``): fp32 parity with PyTorch, NNCF int8 close to fp32, CLI dispatch.

openvino and nncf are imported unguarded: they are in the ``dev`` extra, so a CI without them fails here rather than
skipping.
"""

from __future__ import annotations

import json

import nncf  # noqa: F401 - the int8 path needs it; fail loudly when the extra is missing
import numpy as np
import openvino  # noqa: F401
import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from predict_toys import (
    expert_ckpt,
    one_thread,  # noqa: F401 - autouse fixture
    rtvpnet_ckpt,
    write_bench,
    write_images,
)
from rtvp.checkpoint import save_checkpoint
from rtvp.cli.main import app
from rtvp.deploy.export import ExportModule
from rtvp.deploy.openvino_export import calibration_images, export_openvino
from rtvp.deploy.openvino_runner import OpenVINOPredictor
from rtvp.deploy.runners import open_predictor
from rtvp.deploy.runtime import to_batch
from rtvp.errors import ConfigError
from rtvp.imaging import read_image
from rtvp.predict.loading import bind_prompts, build_encoder, load_model
from rtvp.predict.predictor import Predictor
from rtvp.service import ServeSettings, create_app

PROMPTS = ["划痕", "hole in wood", "crack on glass"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One CLI fp32 export of a tiny RTVPNet (hash encoder, 64 px, NMS outside the graph)."""
    root = tmp_path_factory.mktemp("ov")
    weights = root / "w.pt"
    rtvpnet_ckpt(weights, imgsz=64)
    out = root / "model.xml"
    res = CliRunner().invoke(app, ["export", "--weights", str(weights), "--format", "openvino", "--out", str(out),
                                   "--prompts", ",".join(PROMPTS)])
    assert res.exit_code == 0, res.output
    images = write_images(root / "imgs", [(100, 60), (64, 64), (30, 90), (120, 50)])
    return weights, out, images


def live_expert(path):
    """A tiny expert whose outputs depend on the image: fan-in scaled conv weights, zero biases (a random init
    leaves the head at its constant prior, which int8 cannot get wrong)."""
    ckpt = expert_ckpt(imgsz=64)
    g = torch.Generator().manual_seed(0)
    for k, v in ckpt["model"].items():
        if v.ndim == 4:
            ckpt["model"][k] = torch.randn(v.shape, generator=g) * (2.0 / v[0].numel()) ** 0.5
            if k.replace("weight", "bias") in ckpt["model"]:
                ckpt["model"][k.replace("weight", "bias")].zero_()
    save_checkpoint(ckpt, path)
    return path


def test_sidecar_and_files(exported):
    _, out, _ = exported
    side = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".bin").is_file() and side["format"] == "rtvp-openvino/1"
    assert side["precision"] == "fp32" and side["calibration"] is None and side["class_names"] == PROMPTS
    assert side["texts"][0] == "scratch" and side["imgsz"] == 64 and side["onnx_opset"] == 18
    assert not list(out.parent.glob(".rtvp-ov-*")), "temporary export folder left behind"


def test_fp32_raw_outputs_match_pytorch_with_a_dynamic_batch(exported):
    weights, out, images = exported
    model, meta = load_model(weights)
    prompted, _ = bind_prompts(model, meta, PROMPTS, lambda: build_encoder(meta))
    module = ExportModule(prompted).eval()
    runner = OpenVINOPredictor(out)
    for batch in (images[:1], images[1:4]):
        x, _ = to_batch([read_image(p) for p in batch], 64)
        boxes, scores = runner.raw(x)
        with torch.no_grad():
            ref_boxes, ref_scores = module(torch.from_numpy(x))
        assert boxes.shape == (len(batch), 84, 4) and scores.shape == (len(batch), 84, 3)
        assert np.abs(boxes - ref_boxes.numpy()).max() < 1e-3
        assert np.abs(scores - ref_scores.numpy()).max() < 1e-4


def test_fp32_boxes_identical_to_the_predictor(exported):
    weights, out, images = exported
    ref = Predictor(weights, conf=0.05, iou=0.6, max_det=50).predict(images, prompts=PROMPTS)
    got = OpenVINOPredictor(out, conf=0.05, iou=0.6, max_det=50).predict(images)
    assert sum(len(d) for d in ref) > 20
    for a, b in zip(got, ref, strict=True):
        assert a.class_names == b.class_names == PROMPTS
        assert a.class_id.tolist() == b.class_id.tolist()
        assert a.data["anchor"].tolist() == b.data["anchor"].tolist()
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)


def test_int8_is_quantized_and_close_to_fp32(tmp_path):
    weights = live_expert(tmp_path / "e.pt")
    write_images(tmp_path / "calib", [(64, 64), (90, 50), (50, 80), (70, 70)] * 2, seed=1)
    export_openvino(weights, tmp_path / "f.xml")
    side = export_openvino(weights, tmp_path / "q.xml", int8=True, calib=calibration_images(tmp_path / "calib"),
                           calib_source="calib")
    assert side["precision"] == "int8" and side["calibration"]["images"] == 8
    assert side["calibration"]["check_vs_fp32"]["finite"] is True
    assert "FakeQuantize" in (tmp_path / "q.xml").read_text() and "FakeQuantize" not in (tmp_path / "f.xml").read_text()
    test = write_images(tmp_path / "test", [(100, 60), (64, 64), (30, 90)], seed=2)
    x, _ = to_batch([read_image(p) for p in test], 64)
    (fb, fs), (qb, qs) = OpenVINOPredictor(tmp_path / "f.xml").raw(x), OpenVINOPredictor(tmp_path / "q.xml").raw(x)
    assert np.isfinite(qb).all() and np.isfinite(qs).all()
    assert np.abs(qb - fb).max() < 2.0  # pixels, on a 64 px input
    assert np.corrcoef(fs.ravel(), qs.ravel())[0, 1] > 0.9  # int8 keeps the ranking signal of the scores
    assert np.abs(qs - fs).max() > 0  # it did change something


def test_calibration_sources(tmp_path):
    bench = write_bench(tmp_path)
    paths = calibration_images(bench, "closed_val", 2)
    assert len(paths) == 2 and all(p.is_file() for p in paths) and paths[0] != paths[1]
    with pytest.raises(ConfigError, match="no split 'nope'.*closed_train"):
        calibration_images(bench, "nope")
    with pytest.raises(ConfigError, match="no calibration images found.*closed_train"):
        calibration_images(bench, "closed_train")  # the toy benchmark's train split is empty
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="--calib-data"):
        calibration_images(tmp_path / "empty")
    with pytest.raises(ConfigError, match="at least 1"):
        calibration_images(bench, "closed_train", 0)


def test_cli_predict_and_dispatch(exported, tmp_path):
    weights, out, images = exported
    res = CliRunner().invoke(app, ["predict", "--weights", str(out), "--source", str(images[0].parent), "--out",
                                   str(tmp_path / "pred"), "--conf", "0.05", "--no-save-images"])
    assert res.exit_code == 0, res.output
    written = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    expected = OpenVINOPredictor(out, conf=0.05).predict(images)
    assert len(written) == sum(len(d) for d in expected) > 0
    assert {r["category_name"] for r in written} <= set(PROMPTS)
    assert isinstance(open_predictor(weights), Predictor)
    with pytest.raises(ConfigError, match="exported at 64 px"):
        open_predictor(out, imgsz=128)
    with pytest.raises(ConfigError, match="run on the CPU"):
        open_predictor(out, device="cuda")
    with pytest.raises(ConfigError, match="baked into this OpenVINO IR"):
        open_predictor(out).predict(images[:1], prompts=["rust"])


def test_service_runs_the_ir(exported):
    _, out, images = exported
    client = TestClient(create_app(open_predictor(out, conf=0.05), ServeSettings()))
    info = client.get("/v1/model").json()
    assert info["vocabulary"] == PROMPTS and info["input_size"] == 64
    ok = client.post("/v1/detect", files={"image": ("a.png", images[0].read_bytes(), "image/png")})
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["detections"]) == len(OpenVINOPredictor(out, conf=0.05).predict(images[:1])[0])
    bad = client.post("/v1/detect", files={"image": ("a.png", images[0].read_bytes(), "image/png")},
                      data={"prompts": "rust"})
    assert bad.status_code == 422 and "baked into" in bad.text


def test_export_rejects_bad_requests(tmp_path):
    weights = tmp_path / "w.pt"
    rtvpnet_ckpt(weights)
    cases = [(["--format", "openvino", "--out", str(tmp_path / "m.onnx")], "writes a .xml file"),
             (["--format", "onnx", "--int8"], "add --format openvino"),
             (["--format", "openvino", "--int8", "--out", str(tmp_path / "m.xml")], "needs --calib-data")]
    for extra, message in cases:
        res = CliRunner().invoke(app, ["export", "--weights", str(weights), *extra])
        assert isinstance(res.exception, ConfigError) and message in str(res.exception), res.output
    assert not list(tmp_path.glob("m.*"))
    with pytest.raises(ConfigError, match="needs calibration images"):
        export_openvino(weights, tmp_path / "m.xml", int8=True)
    (tmp_path / "m.xml").write_text("<net/>")
    with pytest.raises(ConfigError, match="sidecar JSON"):
        OpenVINOPredictor(tmp_path / "m.xml")
