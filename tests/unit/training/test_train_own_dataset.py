"""``rtvp train --data`` on a user's own YOLO data YAML / COCO JSON, then ``rtvp predict`` / ``rtvp val`` on it
(toy sizes: 64 px images, 1 epoch, CPU)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from own_datasets import write_coco, write_yolo
from rtvp.checkpoint import load_checkpoint
from rtvp.cli.main import app

FAST = ["--epochs", "1", "--imgsz", "64", "--batch", "4", "--workers", "0", "--device", "cpu",
        "--set", "tensorboard=false", "--set", "plots=false", "--set", "warmup_iters=1"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("RTVP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # runs/ and runs/.benchmarks/ land in the test folder


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_train_on_a_yolo_data_yaml_then_predict_and_val(tmp_path, caplog):
    data = write_yolo(tmp_path / "my_parts")
    with caplog.at_level("INFO", logger="rtvp"):
        out = _run("train", "--data", str(data), "--model", "expert-tiny", "--out", "runs/yolo", *FAST)
    assert "expert: best weights runs/yolo/weights/best.pt" in out
    benches = list((tmp_path / "runs" / ".benchmarks").iterdir())
    assert len(benches) == 1 and benches[0].name.startswith("my_parts-")
    assert f"YOLO data YAML, built benchmark {benches[0].relative_to(tmp_path)}" in caplog.text
    ckpt = load_checkpoint(tmp_path / "runs/yolo/weights/best.pt")
    assert ckpt["vocabulary"] == ["pitted surface on my parts", "scratch on my parts"]
    assert ckpt["train_config"]["data"] == str(benches[0].relative_to(tmp_path))
    _run("predict", "--weights", "runs/yolo/weights/best.pt", "--source", str(data.parent / "images" / "val"),
         "--out", "runs/pred", "--conf", "0.0")
    preds = json.loads((tmp_path / "runs/pred/predictions.json").read_text())
    assert preds and {p["category_name"] for p in preds} <= set(ckpt["vocabulary"])
    caplog.clear()
    with caplog.at_level("INFO", logger="rtvp"):
        out = _run("val", "--data", str(data), "--weights", "runs/yolo/weights/best.pt", "--imgsz", "64", "--json")
    metrics, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])  # stderr warnings may follow
    assert "reusing benchmark" in caplog.text and metrics["num_images"] == 2


def test_train_on_a_coco_json(tmp_path):
    ann = write_coco(tmp_path / "cvat_export")
    out = _run("train", "--data", str(ann), "--model", "expert-tiny", "--out", "runs/coco", *FAST)
    assert "expert: best weights runs/coco/weights/best.pt" in out
    ckpt = load_checkpoint(tmp_path / "runs/coco/weights/best.pt")
    assert ckpt["vocabulary"] == ["pitted surface on cvat export", "Scratch on cvat export"]


def test_train_on_a_coco_json_with_images_elsewhere(tmp_path):
    ann = write_coco(tmp_path / "d", images_dir="pictures")
    result = CliRunner().invoke(app, ["train", "--data", str(ann), "--model", "expert-tiny", *FAST])
    assert result.exit_code != 0 and "pass it with --images DIR" in str(result.exception or result.output)
    out = _run("train", "--data", str(ann), "--images", str(tmp_path / "d" / "pictures"), "--scene", "steel strip",
               "--model", "expert-tiny", "--out", "runs/coco", *FAST)
    assert "best weights" in out
    assert load_checkpoint(tmp_path / "runs/coco/weights/best.pt")["vocabulary"][1] == "Scratch on steel strip"


def test_rtvpnet_on_a_yolo_data_yaml_with_the_hash_encoder(tmp_path):
    data = write_yolo(tmp_path / "d")
    threads = torch.get_num_threads()
    out = _run("train", "--data", str(data), "--model", "rtvpnet-tiny", "--out", "runs/r", *FAST,
               "--set", "expert_epochs=1", "--set", "model.sam=false", "--set", "model.edp=false",
               "--set", "model.text_encoder=hash")
    torch.set_num_threads(threads)
    assert "full: best weights runs/r/weights/best.pt" in out
    assert load_checkpoint(tmp_path / "runs/r/weights/best.pt")["text_encoder"] == "hash"
