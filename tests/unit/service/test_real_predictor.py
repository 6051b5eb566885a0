"""The service over the real ``Predictor`` with a tiny random checkpoint, and ``rtvp serve`` end to end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import encode

import predict_toys

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    predict_toys.rtvpnet_ckpt(path, imgsz=64)
    return path


@pytest.fixture(scope="module")
def predictor(checkpoint):
    from rtvp.predict.predictor import Predictor

    return Predictor(checkpoint, conf=0.05)


def _image() -> np.ndarray:
    img = np.random.default_rng(0).integers(0, 80, (60, 100, 3), dtype=np.uint8)
    img[15:30, 25:50] = 250
    return img


def test_detect_matches_direct_predictor_call(predictor):
    from rtvp.service import create_app

    client = TestClient(create_app(predictor))
    info = client.get("/v1/model").json()
    assert info["vocabulary"] == predict_toys.VOCAB and info["input_size"] == 64
    assert (info["arch"], info["text_encoder"], info["device"]) == ("rtvpnet", "hash", "cpu")
    img = _image()
    r = client.post("/v1/detect", files={"image": ("a.png", encode(img), "image/png")},
                    data={"prompts": "scratch, 划痕, hole in wood", "conf": "0.1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(p["prompt"], p["canonical"]) for p in body["prompts"]] == [
        ("scratch", "scratch"), ("划痕", "scratch"), ("hole in wood", None)]  # free text
    predictor.conf = 0.1
    try:
        direct = predictor.predict([img], prompts=["scratch", "划痕", "hole in wood"])[0]
    finally:
        predictor.conf = 0.05
    got = np.array([d["box"] for d in body["detections"]]).reshape(-1, 4)
    assert len(got) == len(direct) > 0  # random tiny model: many low-score boxes above 0.1
    np.testing.assert_allclose(got, direct.xyxy, atol=0.01)
    assert [d["label"] for d in body["detections"]] == direct.labels
    assert predictor.conf == 0.05  # the per-request conf was restored
    assert (got[:, [0, 2]] <= 100).all() and (got[:, [1, 3]] <= 60).all()


def test_detect_with_exemplar_boxes_matches_the_predictor(predictor):
    from rtvp.predict.exemplars import Exemplar
    from rtvp.service import create_app

    client = TestClient(create_app(predictor))
    img = _image()
    r = client.post("/v1/detect", files={"image": ("a.png", encode(img), "image/png")},
                    data={"prompts": "scratch", "exemplars": '[{"box": [25, 15, 50, 30], "name": "blob"}, '
                                                             '{"box": [0, 0, 10, 10]}]', "conf": "0.0"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["prompt"] for p in body["prompts"]] == ["scratch", "blob", "exemplar"]
    predictor.conf = 0.0
    try:
        direct = predictor.predict([img], prompts=["scratch"], exemplars=[Exemplar(img, (25, 15, 50, 30), "blob"),
                                                                          Exemplar(img, (0, 0, 10, 10))])[0]
    finally:
        predictor.conf = 0.05
    assert [d["label"] for d in body["detections"]] == direct.labels and len(direct) > 0
    np.testing.assert_allclose(np.array([d["box"] for d in body["detections"]]), direct.xyxy, atol=0.01)
    for bad, message in (("not json", "not JSON"), ('[{"box": [5, 5, 1, 1]}]', "x2 <= x1"),
                         ('[{"box": [0, 0, 1, 1], "label": "x"}]', "optional 'name' only"),
                         ('[{"box": [200, 200, 300, 300]}]', "outside its 100x60 image")):
        r = client.post("/v1/detect", files={"image": ("a.png", encode(img), "image/png")}, data={"exemplars": bad})
        assert r.status_code == 422 and message in r.json()["error"]["message"], (bad, r.text)


def test_ground_and_ask_with_real_predictor(predictor):
    from rtvp.service import create_app

    client = TestClient(create_app(predictor))
    png = encode(_image())
    g = client.post("/v1/ground", files={"image": ("a.png", png, "image/png")}, data={"query": "the largest hole"})
    assert g.status_code == 200 and g.json()["defect"] == "hole"
    a = client.post("/v1/ask", files={"image": ("a.png", png, "image/png")}, data={"question": "what defects?"})
    assert a.status_code == 200, a.text
    body = a.json()
    assert set(body["box_ids"]) <= {d["id"] for d in body["detections"]}
    assert [p["prompt"] for p in body["prompts"]] == predict_toys.VOCAB  # no prompts: checkpoint vocabulary


def test_cli_refuses_unset_api_key_env(checkpoint, monkeypatch):
    from typer.testing import CliRunner

    from rtvp.cli.main import app
    from rtvp.errors import ConfigError

    monkeypatch.delenv("RTVP_TEST_UNSET_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve", "--weights", str(checkpoint), "--api-key-env", "RTVP_TEST_UNSET_KEY"])
    assert isinstance(result.exception, ConfigError) and "RTVP_TEST_UNSET_KEY" in str(result.exception)


def test_cli_mask_thr_reaches_the_served_predictor(checkpoint, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    import rtvp.service
    from rtvp.cli.main import app
    from rtvp.errors import ConfigError

    served, create = [], rtvp.service.create_app
    monkeypatch.setattr(rtvp.service, "create_app", lambda predictor, *a: served.append(predictor) or create(
        predictor, *a))
    monkeypatch.setattr(uvicorn, "run", lambda application, **kw: None)
    result = CliRunner().invoke(app, ["serve", "--weights", str(checkpoint), "--mask-thr", "0.3"])
    assert result.exit_code == 0, result.output
    assert [p.mask_thr for p in served] == [0.3]
    result = CliRunner().invoke(app, ["serve", "--weights", str(checkpoint), "--mask-thr", "0"])
    assert isinstance(result.exception, ConfigError) and "--mask-thr" in str(result.exception)
    assert len(served) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rtvp_serve_subprocess_end_to_end(checkpoint, tmp_path):
    port = _free_port()
    env = {**os.environ, "RTVP_TEST_KEY": "k-123", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rtvp.cli.main", "serve", "--weights", str(checkpoint), "--port", str(port),
           "--api-key-env", "RTVP_TEST_KEY", "--log-level", "warning"]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "rtvp serve did not come up"
            time.sleep(0.2)
        files = {"image": ("a.png", encode(_image()), "image/png")}
        assert httpx.post(base + "/v1/detect", files=files, data={"prompts": "crack"}).status_code == 401
        r = httpx.post(base + "/v1/detect", files=files, data={"prompts": "crack"},
                       headers={"Authorization": "Bearer k-123"}, timeout=30)
        assert r.status_code == 200 and r.json()["model"] == "tiny"
        assert httpx.get(base + "/").status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
