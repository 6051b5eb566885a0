"""The text encoder as a spec ``{name, path, arch}``: config forms, the check before training, and the whole
``rtvp train`` -> ``rtvp predict`` path with a tiny open_clip model written by the test (no download)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from own_datasets import write_yolo
from rtvp.checkpoint import load_checkpoint
from rtvp.cli.main import app
from rtvp.config import apply_overrides, from_dict, to_dict
from rtvp.errors import ConfigError
from rtvp.models.config import ModelConfig, TextEncoderSpec
from rtvp.models.text.spec import check_text_encoder
from rtvp.training.config import TrainConfig

TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
             "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
FAST = ["--model", "rtvpnet-tiny", "--epochs", "1", "--imgsz", "64", "--batch", "4", "--workers", "0",
        "--device", "cpu", "--set", "tensorboard=false", "--set", "plots=false", "--set", "warmup_iters=1",
        "--set", "expert_epochs=1", "--set", "model.sam=false", "--set", "model.edp=false"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("RTVP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture()
def tiny_clip(tmp_path) -> tuple[Path, Path]:
    """``(model-config JSON, random weights file)`` of a 1.6 M-parameter open_clip model."""
    import open_clip

    arch = tmp_path / "tinyclip.json"
    arch.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(arch)
    torch.manual_seed(0)
    weights = tmp_path / "tinyclip.bin"
    torch.save(open_clip.create_model("tinyclip").state_dict(), weights)
    return arch, weights


def test_text_encoder_forms():
    assert ModelConfig(text_encoder="hash").text_encoder == TextEncoderSpec("hash")
    cfg = from_dict(ModelConfig, {"text_encoder": {"name": "clip", "path": "w.bin", "arch": "ViT-B-32"}})
    assert cfg.text_encoder == TextEncoderSpec("clip", Path("w.bin"), "ViT-B-32")
    assert cfg.text_encoder.to_meta() == {"name": "clip", "path": "w.bin", "arch": "ViT-B-32"}
    assert ModelConfig().text_encoder.to_meta() == "minilm"
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg  # a run's config.yaml round-trips
    train = apply_overrides(TrainConfig(), ["model.text_encoder.name=clip", "model.text_encoder.path=/w/c.bin"])
    assert train.model.text_encoder == TextEncoderSpec("clip", Path("/w/c.bin"))
    assert apply_overrides(TrainConfig(), ["model.text_encoder=hash"]).model.text_encoder.name == "hash"
    bad_key = r"model\.text_encoder: unknown key\(s\) \['wieghts'\]; valid keys: \['arch', 'name', 'path'\]"
    with pytest.raises(ConfigError, match=bad_key):
        from_dict(ModelConfig, {"text_encoder": {"name": "clip", "wieghts": "w.bin"}}, "model")


def test_check_names_the_option_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.text_encoder \(clip\): text encoder 'clip' needs path=.*"
                                          r"--set model\.text_encoder\.path="):
        check_text_encoder(TextEncoderSpec("clip"))
    with pytest.raises(ConfigError, match=r"model\.text_encoder \(bert\): unknown text encoder 'bert'"):
        check_text_encoder("bert")
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"cannot load .*junk.bin as open_clip 'ViT-B-32'"):
        check_text_encoder(TextEncoderSpec("clip", tmp_path / "junk.bin"))


def test_bad_clip_spec_fails_before_stage_one_trains(tmp_path):
    data = write_yolo(tmp_path / "d")
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", "runs/bad", *FAST,
                                   "--set", "model.text_encoder=clip"])
    assert res.exit_code != 0 and "--set model.text_encoder.path=" in str(res.exception)
    assert not (tmp_path / "runs" / "bad").exists()  # nothing trained


def test_train_and_predict_with_a_tiny_open_clip_model(tmp_path, tiny_clip):
    arch, weights = tiny_clip
    data = write_yolo(tmp_path / "d")
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", "runs/clip", *FAST,
                                   "--set", "model.text_encoder.name=clip",
                                   "--set", f"model.text_encoder.path={weights}",
                                   "--set", f"model.text_encoder.arch={arch}"])
    assert res.exit_code == 0, (res.output, res.exception)
    ckpt = load_checkpoint(tmp_path / "runs/clip/weights/best.pt")
    assert ckpt["text_encoder"] == {"name": "clip", "path": str(weights), "arch": str(arch)}
    assert ckpt["text_dim"] == 16 and ckpt["text_embeddings"].shape == (2, 16)
    # a prompt outside the training vocabulary is encoded by the same CLIP model, rebuilt from the checkpoint
    res = CliRunner().invoke(app, ["predict", "--weights", "runs/clip/weights/best.pt", "--source",
                                   str(data.parent / "images" / "val"), "--prompts", "scratch,dent",
                                   "--out", "runs/pred", "--conf", "0.0"])
    assert res.exit_code == 0, (res.output, res.exception)
    preds = json.loads((tmp_path / "runs/pred/predictions.json").read_text())
    assert {p["category_name"] for p in preds} == {"scratch", "dent"}


def test_override_into_a_plain_value_says_how_to_set_the_section():
    with pytest.raises(ConfigError, match=r"'model\.text_encoder' holds the value 'clip', not a section; .*"
                                          r"model\.text_encoder\.name=\.\.\."):
        apply_overrides(TrainConfig(), ["model.text_encoder=clip", "model.text_encoder.path=/w.bin"])
