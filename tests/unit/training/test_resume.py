"""--resume continues to the same result as an uninterrupted run (CPU, workers=0): kill after k steps, resume,
compare the final model, EMA and optimizer state and the logged losses."""

import csv

import pytest
import torch
from trainer_toys import single_thread, toy_cfg, toy_parts  # noqa: F401

from rtvp.checkpoint import load_checkpoint
from rtvp.training.runner import fit
from rtvp.training.trainer import HookBase


class Killed(RuntimeError):
    pass


class KillAt(HookBase):
    """Simulates a crash right after optimizer step ``step``."""

    name = "kill"

    def __init__(self, step: int) -> None:
        self.at = step

    def after_step(self) -> None:
        if self.trainer.step == self.at:
            raise Killed(f"killed at step {self.at}")


def _cfg(out, **kw):
    # 10 images, batch 4 -> 3 steps per epoch (last batch of 2); EMA and the DP hook carry state across the kill
    return toy_cfg(out, epochs=3, val_period=1, **kw)


def _parts(cfg):
    evals = lambda m: {"AP": float(m.cls.weight.abs().mean())}  # noqa: E731 - deterministic function of the weights
    return toy_parts(cfg, n=10, with_dp=True, dp_eps=1e-9, eval_fn=evals)


def _state(run):
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    with open(run / "results.csv", newline="") as f:
        rows = [{k: v for k, v in r.items() if k not in ("time_s", "images_per_s")} for r in csv.DictReader(f)]
    return ckpt, rows


def _assert_same(a, b):
    (ca, ra), (cb, rb) = a, b
    assert ca["step"] == cb["step"] == 9 and ca["epoch"] == cb["epoch"] == 3
    for key in ("model", "ema"):
        for name, t in ca[key].items():
            torch.testing.assert_close(cb[key][name], t, rtol=1e-6, atol=1e-7, msg=f"{key}.{name}")
    for pid, st in ca["optimizer"]["state"].items():
        torch.testing.assert_close(cb["optimizer"]["state"][pid]["exp_avg"], st["exp_avg"], rtol=1e-6, atol=1e-8)
    assert ca["hooks"]["dp"] == pytest.approx(cb["hooks"]["dp"])
    assert ca["hooks"]["ema"] == cb["hooks"]["ema"]
    assert ra == rb


@pytest.mark.parametrize("save_iters, kill_at, resumed_from", [(0, 5, 3), (1, 5, 5)],
                         ids=["epoch-boundary", "mid-epoch"])
def test_resume_matches_uninterrupted_run(tmp_path, save_iters, kill_at, resumed_from):
    cfg = _cfg(tmp_path / "full", save_iters=save_iters)
    fit(cfg, _parts(cfg))
    reference = _state(tmp_path / "full")

    cfg = _cfg(tmp_path / "killed", save_iters=save_iters)
    with pytest.raises(Killed):
        fit(cfg, _parts(cfg), extra_hooks=[KillAt(kill_at)])
    assert load_checkpoint(tmp_path / "killed" / "weights" / "last.pt")["step"] == resumed_from
    trainer = fit(cfg, _parts(cfg), resume=True)
    assert trainer.step == 9
    _assert_same(reference, _state(tmp_path / "killed"))


def test_resume_without_rng_restore_diverges(tmp_path, monkeypatch):
    """Control: the comparison above is sensitive; skipping the RNG restore changes the result."""
    cfg = _cfg(tmp_path / "full")
    fit(cfg, _parts(cfg))
    reference = _state(tmp_path / "full")
    cfg = _cfg(tmp_path / "killed")
    with pytest.raises(Killed):
        fit(cfg, _parts(cfg), extra_hooks=[KillAt(4)])
    monkeypatch.setattr("rtvp.training.trainer.restore_rng", lambda state: None)
    fit(cfg, _parts(cfg), resume=True)
    resumed, _ = _state(tmp_path / "killed")
    assert not torch.allclose(resumed["model"]["cls.weight"], reference[0]["model"]["cls.weight"], atol=1e-6)


def test_last_period_saves_every_n_epochs_and_the_final_one(tmp_path):
    """last_period=2 over 3 epochs: last.pt after epoch 2 and 3 only; a crash resumes from epoch 2 to the same end."""
    kw = {"epochs": 3, "val_period": 0, "last_period": 2}
    cfg = toy_cfg(tmp_path / "full", **kw)
    fit(cfg, toy_parts(cfg, n=10, with_dp=True, dp_eps=1e-9))
    reference = _state(tmp_path / "full")
    cfg = toy_cfg(tmp_path / "early", **kw)
    with pytest.raises(Killed):  # in epoch 2: epoch 1 was not saved
        fit(cfg, toy_parts(cfg, n=10, with_dp=True, dp_eps=1e-9), extra_hooks=[KillAt(5)])
    assert not (tmp_path / "early" / "weights" / "last.pt").exists()
    cfg = toy_cfg(tmp_path / "killed", **kw)
    with pytest.raises(Killed):
        fit(cfg, toy_parts(cfg, n=10, with_dp=True, dp_eps=1e-9), extra_hooks=[KillAt(8)])
    assert load_checkpoint(tmp_path / "killed" / "weights" / "last.pt")["step"] == 6
    fit(cfg, toy_parts(cfg, n=10, with_dp=True, dp_eps=1e-9), resume=True)
    _assert_same(reference, _state(tmp_path / "killed"))
