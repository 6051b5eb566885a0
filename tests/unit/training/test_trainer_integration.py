"""Integration: the real tiny model, data pipeline, loss and evaluator trained through ``rtvp train`` on a
hand-made 10-image benchmark (CPU, 64 px, a few steps)."""

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rtvp.checkpoint import load_checkpoint
from rtvp.cli.main import app
from rtvp.config import from_dict
from rtvp.errors import ConfigError
from rtvp.models import ModelConfig, build_model
from rtvp.training.config import TrainConfig
from rtvp.training.stages import train
from rtvp.training.trainer import HookBase
from trainer_bench import write_bench

FAST = ["--set", "model.text_encoder=hash", "--set", "tensorboard=false", "--set", "plots=false",
        "--set", "warmup_iters=1"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_bench(tmp_path_factory.mktemp("bench"))


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("RTVP_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # toy sizes: a second thread only spins on this shared machine
    yield
    torch.set_num_threads(threads)


def _train(*args):
    result = CliRunner().invoke(app, ["train", *args], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_two_stage_closed_run(bench, tmp_path):
    run = tmp_path / "run"
    out = _train("--data", str(bench), "--protocol", "closed", "--model", "rtvpnet-tiny", "--epochs", "1",
                 "--imgsz", "64", "--out", str(run), "--batch", "4", "--workers", "0", "--device", "cpu",
                 "--set", "expert_epochs=1", "--set", "model.edp=true", "--set", "model.sam_freeze=true", *FAST)
    assert "full: best weights" in out
    expert, full = load_checkpoint(run / "expert" / "weights" / "best.pt"), load_checkpoint(run / "weights" / "last.pt")
    assert load_checkpoint(run / "weights" / "best.pt")["stripped"]  # the weights to ship; last.pt has the rest
    assert expert["arch"] == "expert" and expert["nc"] == 3 and expert["text_encoder"] is None
    assert full["arch"] == "rtvpnet" and full["text_encoder"] == "hash" and full["text_dim"] == 64
    assert full["vocabulary"] == ["scratch on steel", "hole on steel", "spot on wood"]
    assert [c["id"] for c in full["categories"]] == [1, 2, 3] and full["text_embeddings"].shape == (3, 64)
    assert full["train_config"]["model"]["edp"] is True and full["epoch"] == 1
    groups = {g["name"] for g in full["optimizer"]["param_groups"]}
    assert groups == {"expert/decay", "expert/no_decay", "other/decay", "other/no_decay"}  # frozen SAM: no group
    # stage 2 starts from the stage-1 expert: its first step moves the expert only at the coupling lr
    rows = _csv(run / "results.csv")
    assert float(rows[0]["lr/expert"]) == pytest.approx(0.1 * float(rows[0]["lr/other"]))
    assert {"metrics/AP", "metrics/AP50", "train/dp", "train/nce", "train/aux"} <= set(rows[0])
    assert float(rows[0]["train/dp"]) > 0 and "lr/sam" not in rows[0]  # EDP's L_dp is trained; SAM is frozen
    assert json.loads((run / "metrics.json").read_text())["protocol"] == "closed"
    assert "metrics/AP" in _csv(run / "expert" / "results.csv")[0]
    # what a predictor does: rebuild the model from the checkpoint alone and run it
    cfg = from_dict(ModelConfig, full["model_config"])
    model = build_model(cfg, full["text_dim"]).eval()
    model.load_state_dict(full["ema"])
    logits = model(torch.rand(1, 3, 64, 64), full["text_embeddings"]).logits
    assert logits.shape[-1] == 3 and torch.isfinite(logits).all()
    # resuming a finished run trains nothing more: same step, same weights
    last = load_checkpoint(run / "weights" / "last.pt")
    _train("--out", str(run), "--resume", "--device", "cpu")
    again = load_checkpoint(run / "weights" / "last.pt")
    assert again["step"] == last["step"] and again["epoch"] == 1
    assert all(torch.equal(t, again["model"][k]) for k, t in last["model"].items())


def test_open_protocol_trains_on_seen_and_evaluates_unseen(bench, tmp_path):
    run = tmp_path / "open"
    _train("--data", str(bench), "--protocol", "open", "--model", "rtvpnet-tiny", "--epochs", "1", "--imgsz", "64",
           "--out", str(run), "--batch", "4", "--workers", "0", "--device", "cpu", "--set", "expert_epochs=1",
           "--set", "model.sam=false", "--set", "model.edp=false", "--set", "vocab_size=3", *FAST)
    expert = load_checkpoint(run / "expert" / "weights" / "best.pt")
    assert expert["vocabulary"] == ["scratch on steel", "spot on wood"]  # seen classes only
    assert not (run / "expert" / "metrics.json").exists()  # the seen-class expert is not scored on unseen
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["protocol"] == "open" and list(metrics["per_class"]) == ["hole on steel"]
    assert load_checkpoint(run / "weights" / "last.pt")["arch"] == "rtvpnet"


def test_stage2_embedding_branch_starts_as_the_expert(bench, tmp_path):
    """expert_head_init: stage 2's first forward ranks the expert's (seen) classes exactly as the expert does."""
    from rtvp.loss.config import LossConfig
    from rtvp.models import ExpertDetector
    from rtvp.training.distributed import DistInfo
    from rtvp.training.stages import full_parts

    run = tmp_path / "expert"
    _train("--data", str(bench), "--protocol", "open", "--model", "rtvpnet-tiny", "--epochs", "1", "--imgsz", "64",
           "--out", str(run), "--batch", "4", "--workers", "0", "--device", "cpu", "--set", "stage=expert", *FAST)
    ckpt = run / "weights" / "best.pt"
    expert = load_checkpoint(ckpt)
    det = ExpertDetector("tiny", 3, nc=expert["nc"]).eval()
    det.load_state_dict(expert["ema"] if expert["ema"] is not None else expert["model"])
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = det(x).logits
    model_cfg = ModelConfig(scale="tiny", sam=False, edp=False, rvp=False, text_encoder="hash")
    for init in (True, False):
        cfg = TrainConfig(data=bench, protocol="open", stage="full", expert_weights=ckpt, imgsz=64, batch=4,
                          workers=0, device="cpu", expert_head_init=init, model=model_cfg, loss=LossConfig(cls=0.7))
        parts = full_parts(cfg, None, ckpt, DistInfo())
        assert parts.criterion.gains["cls"] == 0.7  # the loss section reaches stage 2's criterion
        rows = [parts.meta["vocabulary"].index(t) for t in expert["vocabulary"]]  # the expert's logit order
        with torch.no_grad():
            logits = parts.model.eval()(x, parts.text_table[rows]).logits
        assert torch.equal(logits.argmax(-1), z.argmax(-1)) is init


def test_expert_text_rows_reuse_the_class_table(monkeypatch):
    """The expert's classes come from the stage's text table (its logit order); only unknown texts are encoded."""
    from rtvp.training import stages
    from rtvp.training.distributed import DistInfo

    table = torch.arange(12.0).view(3, 4)
    encoded = []
    monkeypatch.setattr(stages, "class_text_table", lambda cfg, texts, dist: encoded.append(texts) or torch.ones(2, 4))
    rows = stages.expert_text_rows(None, ["c", "a"], ["a", "b", "c"], table, DistInfo())
    assert torch.equal(rows, table[[2, 0]]) and encoded == []
    assert torch.equal(stages.expert_text_rows(None, ["a", "z"], ["a", "b", "c"], table, DistInfo()), torch.ones(2, 4))
    assert encoded == [["a", "z"]]


class KillAt(HookBase):
    name = "kill"

    def __init__(self, step):
        self.at = step

    def after_step(self):
        if self.trainer.step == self.at:
            raise KeyboardInterrupt


def test_real_pipeline_resume_is_exact(bench, tmp_path, monkeypatch):
    """Expert-tiny on the benchmark (augmentations on, 2 loader workers): kill mid-epoch 2, resume, compare with an
    uninterrupted run. The data pipeline seeds every item by (seed, epoch, index), so this holds with workers."""
    def cfg(name):
        return TrainConfig(data=bench, protocol="closed", arch="expert", epochs=2, batch=4, imgsz=64, workers=2,
                           device="cpu", warmup_iters=1, save_iters=3, val_period=0, tensorboard=False, plots=False,
                           out=tmp_path / name, model=ModelConfig(scale="tiny"))

    train(cfg("full"))
    import rtvp.training.runner as runner

    default_hooks = runner.default_hooks
    monkeypatch.setattr(runner, "default_hooks", lambda *a: [*default_hooks(*a), KillAt(3)])
    with pytest.raises(KeyboardInterrupt):
        train(cfg("killed"))
    monkeypatch.setattr(runner, "default_hooks", default_hooks)
    assert load_checkpoint(tmp_path / "killed" / "weights" / "last.pt")["step"] == 3  # mid-epoch 2 (2 steps/epoch)
    train(cfg("killed"), resume=True)
    a = load_checkpoint(tmp_path / "full" / "weights" / "last.pt")
    b = load_checkpoint(tmp_path / "killed" / "weights" / "last.pt")
    assert a["step"] == b["step"] == 4
    for key in ("model", "ema"):
        for name, t in a[key].items():
            torch.testing.assert_close(b[key][name], t, rtol=1e-5, atol=1e-6, msg=f"{key}.{name}")


def test_cli_errors_are_clear(bench, tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        _train("--data", str(bench), "--out", str(tmp_path / "x"), "--set", "model.nope=1")
    with pytest.raises(ConfigError, match="unknown model"):
        _train("--data", str(bench), "--model", "yolo-n", "--out", str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="closed-set"):
        _train("--data", str(bench), "--model", "expert-n", "--protocol", "open", "--out", str(tmp_path / "x"))
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("epochs: 3\nlr: 0.01\nmodel: {scale: s, rvp: false}\n")
    from rtvp.cli.train import build_config

    cfg = build_config(cfg_file, ["model.t2v=false", "augment.mosaic=0.5"], model=None, epochs=5, data=Path("b"))
    assert (cfg.epochs, cfg.lr, cfg.model.scale, cfg.model.rvp, cfg.model.t2v, cfg.augment.mosaic) == (
        5, 0.01, "s", False, False, 0.5)
    cfg_file.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match="unknown key"):
        build_config(cfg_file, [])


def test_close_mosaic_reaches_each_stage_dataset(bench):
    """The training split of each stage stops mosaic where ``TrainConfig.mosaic_stop`` says."""
    from rtvp.training.stages import build_train_set

    cfg = TrainConfig(data=bench, expert_epochs=12, epochs=6, close_mosaic=4, imgsz=64, workers=0, device="cpu",
                      model=ModelConfig(scale="tiny", sam=False, edp=False, rvp=False, text_encoder="hash"))
    assert build_train_set(cfg, "expert").cfg.mosaic_stop_epoch == 8
    assert build_train_set(cfg, "full").cfg.mosaic_stop_epoch == 3
