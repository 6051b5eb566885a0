import csv
import logging
import math

import pytest
import torch
from trainer_toys import ToyDataset, single_thread, toy_cfg, toy_collate, toy_criterion, toy_parts  # noqa: F401

from rtvp.checkpoint import load_checkpoint
from rtvp.config import load_yaml
from rtvp.errors import CheckpointError, ConfigError
from rtvp.training.config import TrainConfig
from rtvp.training.distributed import make_loader
from rtvp.training.runner import fit
from rtvp.training.trainer import HookBase, NonFiniteLossError


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_fit_writes_the_run_folder_and_learns(tmp_path):
    aps = iter([0.1, 0.5, 0.3])
    seen = []

    def eval_fn(model):
        seen.append((model, model.training))
        return {"AP": next(aps), "AP50": 0.9, "per_class": {"a": {"AP": 0.1}}}

    cfg = toy_cfg(tmp_path, epochs=3, val_period=1, plots=True, tensorboard=True, batch=2)
    trainer = fit(cfg, toy_parts(cfg, eval_fn=eval_fn))
    assert (tmp_path / "config.yaml").is_file() and load_yaml(TrainConfig, tmp_path / "config.yaml") == cfg
    rows = _rows(tmp_path / "results.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [float(r["metrics/AP"]) for r in rows] == [0.1, 0.5, 0.3]
    assert {"train/cls", "train/box", "train/dp", "lr/expert", "lr/other", "images_per_s"} <= set(rows[0])
    assert "metrics/per_class" not in rows[0]  # only scalar metrics go to the CSV
    first, last = float(rows[0]["train/cls"]), float(rows[-1]["train/cls"])
    assert last < first, (first, last)
    assert float(rows[-1]["lr/expert"]) == pytest.approx(0.1 * float(rows[-1]["lr/other"]))
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert any((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    # the evaluated model is the EMA copy, in eval mode
    assert all(m is trainer.ema.module and not training for m, training in seen)
    best = load_checkpoint(tmp_path / "weights" / "best.pt")
    last_ckpt = load_checkpoint(tmp_path / "weights" / "last.pt")
    assert best["epoch"] == 2 and last_ckpt["epoch"] == 3 and last_ckpt["step"] == 18
    assert best["hooks"]["checkpoint"]["best"] == 0.5
    for key in ("version", "format", "model_config", "train_config", "model", "ema", "vocabulary", "categories",
                "optimizer", "scaler", "hooks", "epoch", "epoch_iter", "step", "rng"):
        assert key in last_ckpt, key
    assert last_ckpt["train_config"]["epochs"] == 3 and last_ckpt["vocabulary"] == ["a", "b", "c"]
    torch.testing.assert_close(last_ckpt["ema"]["cls.weight"], trainer.ema.module.cls.weight)


def test_eval_period_and_best_without_eval(tmp_path):
    calls = []
    cfg = toy_cfg(tmp_path / "a", epochs=3, val_period=2)
    trainer = fit(cfg, toy_parts(cfg, eval_fn=lambda m: calls.append(1) or {"AP": 0.2}))
    assert len(calls) == 2  # after epoch 2 and after the last epoch
    assert trainer.metrics == {"AP": 0.2}
    cfg = toy_cfg(tmp_path / "b", epochs=1)
    fit(cfg, toy_parts(cfg))
    weights = tmp_path / "b" / "weights"
    last, best = load_checkpoint(weights / "last.pt"), load_checkpoint(weights / "best.pt")
    assert best["stripped"] and best["optimizer"] is None and best["epoch"] == 1
    final = last["ema"] if last["ema"] is not None else last["model"]
    assert final.keys() == best["model"].keys()
    assert all(torch.equal(final[k], best["model"][k]) and torch.equal(final[k], best["ema"][k]) for k in final)
    assert (weights / "best.pt").stat().st_size < (weights / "last.pt").stat().st_size
    assert "stripped" not in last and last["optimizer"]  # last.pt keeps what --resume needs


def test_best_after_evaluation_is_the_best_epoch_stripped(tmp_path):
    aps = iter([0.1, 0.7, 0.3])
    cfg = toy_cfg(tmp_path, epochs=3, val_period=1, patience=0, save_period=1)
    fit(cfg, toy_parts(cfg, eval_fn=lambda m: {"AP": next(aps)}))
    weights_dir = tmp_path / "weights"
    epoch2, best = load_checkpoint(weights_dir / "epoch2.pt"), load_checkpoint(weights_dir / "best.pt")
    assert best["stripped"] and best["epoch"] == epoch2["epoch"] == 2 and best["optimizer"] is None
    weights = epoch2["ema"] if epoch2["ema"] is not None else epoch2["model"]
    assert all(torch.equal(weights[k], best["model"][k]) for k in weights)


def test_early_stop_after_patience(tmp_path, caplog):
    aps = iter([0.5, 0.4, 0.45, 0.9, 0.9])
    cfg = toy_cfg(tmp_path, epochs=5, val_period=1, patience=2)
    with caplog.at_level(logging.INFO, logger="rtvp.train"):
        trainer = fit(cfg, toy_parts(cfg, eval_fn=lambda m: {"AP": next(aps)}))
    assert trainer.epoch == 3 and "early stop" in trainer.stop_reason
    assert len(_rows(tmp_path / "results.csv")) == 3
    assert "has not improved for 2 evaluations" in caplog.text


def test_nan_guard_names_step_and_terms(tmp_path):
    calls = {"n": 0}

    def criterion(outputs, batch):
        calls["n"] += 1
        out = toy_criterion(outputs, batch)
        if calls["n"] == 3:
            out["loss"] = out["loss"] * float("nan")
            out["cls"] = out["cls"] * float("nan")
        return out

    cfg = toy_cfg(tmp_path)
    parts = toy_parts(cfg)
    parts.criterion = criterion
    with pytest.raises(NonFiniteLossError) as e:
        fit(cfg, parts)
    msg = str(e.value)
    assert "step 3" in msg and "cls=nan" in msg and "box=" in msg and "lower lr" in msg
    assert all(torch.isfinite(p).all() for p in parts.model.parameters())
    assert not (tmp_path / "weights" / "last.pt").exists()  # failed in epoch 1: nothing saved


def test_text_table_lookup_and_padding_mask(tmp_path):
    cfg = toy_cfg(tmp_path, epochs=1, ema=False)

    def collate(samples):
        batch = toy_collate(samples)
        batch.vocab_ids = torch.tensor([2, 0, -1])
        batch.gt_labels = torch.where(batch.gt_mask, torch.zeros_like(batch.gt_labels), batch.gt_labels)
        return batch

    parts = toy_parts(cfg, text_dim=6)
    parts.loader = make_loader(ToyDataset(8), 4, collate, seed=0)
    table = parts.text_table.clone()
    fit(cfg, parts)
    assert len(parts.model.calls) == 2
    for text, mask in parts.model.calls:
        torch.testing.assert_close(text, table[[2, 0, 0]])
        assert mask.tolist() == [True, True, False]


def test_dp_termination_hook(tmp_path, caplog):
    cfg = toy_cfg(tmp_path, epochs=2, batch=2)
    parts = toy_parts(cfg, with_dp=True, dp_eps=1e3)  # any L_dp is below this: stops at the first check
    with caplog.at_level(logging.INFO, logger="rtvp.train"):
        fit(cfg, parts)
    assert parts.model.dp_active is False
    assert "L_dp early termination at step 10" in caplog.text
    ckpt = load_checkpoint(tmp_path / "weights" / "last.pt")
    assert ckpt["hooks"]["dp"]["active"] is False and ckpt["hooks"]["dp"]["stopped_at"] == 10
    rows = _rows(tmp_path / "results.csv")
    assert float(rows[-1]["train/dp"]) < float(rows[0]["train/dp"])  # dp is 0 after termination

    cfg = toy_cfg(tmp_path / "never", epochs=1, batch=2)
    parts = toy_parts(cfg, with_dp=True, dp_eps=0.0)
    fit(cfg, parts)
    assert parts.model.dp_active is True


def test_grad_clip_bounds_the_gradient_norm(tmp_path):
    class Probe(HookBase):
        norms: list = []

        def after_step(self):
            grads = [p.grad for p in self.trainer.bare_model.parameters() if p.grad is not None]
            self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    cfg = toy_cfg(tmp_path, epochs=1, grad_clip=1e-3)
    probe = Probe()
    fit(cfg, toy_parts(cfg), extra_hooks=[probe])
    assert probe.norms and max(probe.norms) <= 1e-3 * 1.001


def test_run_folder_is_not_overwritten_silently(tmp_path):
    cfg = toy_cfg(tmp_path, epochs=1)
    fit(cfg, toy_parts(cfg))
    with pytest.raises(ConfigError, match="already holds a run"):
        fit(cfg, toy_parts(cfg))
    cfg2 = toy_cfg(tmp_path, epochs=1, exist_ok=True)
    fit(cfg2, toy_parts(cfg2))
    with pytest.raises(CheckpointError, match="not found"):
        fit(toy_cfg(tmp_path / "new"), toy_parts(cfg), resume=True)


def test_config_validation_errors():
    with pytest.raises(ConfigError, match="multiple of 32"):
        TrainConfig(imgsz=100)
    with pytest.raises(ConfigError, match="out of range"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="closed-set"):
        TrainConfig(arch="expert", protocol="open")
    cfg = TrainConfig().with_model_name("expert-s")
    assert cfg.arch == "expert" and cfg.model.scale == "s" and cfg.stages == ("expert",)
    assert TrainConfig(stage="both").stages == ("expert", "full")
    with pytest.raises(ConfigError, match="rtvpnet-n"):
        TrainConfig().with_model_name("yolo-n")
    assert math.isclose(TrainConfig().lr, 2e-3) and TrainConfig().weight_decay == 0.025
