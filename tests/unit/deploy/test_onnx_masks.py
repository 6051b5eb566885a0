"""ONNX and OpenVINO export of a model with the mask branch: the extra outputs; the runners' masks equal PyTorch's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from predict_toys import (
    one_thread,  # noqa: F401 - autouse fixture
    rtvpnet_ckpt,
    write_images,
)
from rtvp.cli.main import app
from rtvp.deploy.onnx_runner import OnnxPredictor
from rtvp.predict.predictor import Predictor


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_masks")
    weights = root / "w.pt"
    rtvpnet_ckpt(weights, imgsz=64, masks=True)
    out = root / "model.onnx"
    res = CliRunner().invoke(app, ["export", "--weights", str(weights), "--format", "onnx", "--out", str(out),
                                   "--nms", "--conf", "0.05"])
    assert res.exit_code == 0, res.output
    return weights, out, write_images(root / "imgs", [(100, 60), (64, 64), (30, 90)])


def test_sidecar_and_outputs(exported):
    _, out, _ = exported
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["outputs"] == ["boxes", "scores", "detections", "mask_coef", "protos"] and side["masks"] is True
    raw = OnnxPredictor(out).raw(np.random.default_rng(0).random((2, 3, 64, 64)).astype(np.float32))
    assert raw[3].shape == (2, 84, 32) and raw[4].shape == (2, 32, 16, 16) and raw[2].shape[1] == 8


@pytest.mark.parametrize("in_graph", [False, True])
def test_runner_masks_equal_pytorch(exported, in_graph):
    weights, out, images = exported
    runner = OnnxPredictor(out, conf=0.05, max_det=50)
    runner.in_graph_nms = in_graph
    ref = Predictor(weights, conf=0.05, max_det=50).predict(images)
    got = runner.predict(images)
    assert sum(len(d) for d in ref) > 5
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        assert a.mask.shape == b.mask.shape
        differ = (a.mask != b.mask).sum()
        assert differ <= 0.001 * b.mask.size, differ  # pixels whose logit is within float noise of 0 may flip


def test_openvino_masks_equal_pytorch(exported, tmp_path):
    """The OpenVINO IR (built from the same ONNX graph) carries the mask outputs; its runner's masks match PyTorch."""
    from rtvp.deploy.openvino_runner import OpenVINOPredictor

    weights, _, images = exported
    out = tmp_path / "model.xml"
    res = CliRunner().invoke(app, ["export", "--weights", str(weights), "--format", "openvino", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.with_suffix(".json").read_text())["masks"] is True
    got = OpenVINOPredictor(out, conf=0.05, max_det=50).predict(images)
    ref = Predictor(weights, conf=0.05, max_det=50).predict(images)
    assert sum(len(d) for d in ref) > 5
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        assert a.mask is not None and a.mask.shape == b.mask.shape
        assert (a.mask != b.mask).sum() <= 0.001 * b.mask.size


def test_runner_mask_threshold_equals_pytorch(exported):
    """``mask_thr`` reaches the exported runner's masks as it reaches the checkpoint's; a bad one is refused."""
    from rtvp.deploy.runners import open_predictor
    from rtvp.errors import ConfigError

    weights, out, images = exported
    got = open_predictor(out, conf=0.05, max_det=50, mask_thr=0.2).predict(images)
    ref = Predictor(weights, conf=0.05, max_det=50, mask_thr=0.2).predict(images)
    default = Predictor(weights, conf=0.05, max_det=50).predict(images)
    assert sum(int(a.mask.sum()) for a in ref) > sum(int(a.mask.sum()) for a in default)
    for a, b in zip(got, ref, strict=True):
        assert (a.mask != b.mask).sum() <= 0.001 * b.mask.size
    with pytest.raises(ConfigError, match="--mask-thr"):
        OnnxPredictor(out, mask_thr=0.0)
