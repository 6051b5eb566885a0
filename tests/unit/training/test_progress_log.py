"""The console epoch summary shows each loss term's mean over the epoch, like results.csv (not the last step's)."""

import logging
from types import SimpleNamespace

from rtvp.training.loggers import ProgressHook


def _trainer() -> SimpleNamespace:
    return SimpleNamespace(dist=SimpleNamespace(is_main=True), epoch=0, max_epochs=2, step=0, metrics_epoch=-1,
                           metrics={}, last_losses={})


def _summaries(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]


def test_epoch_summary_is_the_epoch_mean(caplog):
    hook = ProgressHook(enabled=False)
    t = _trainer()
    hook.trainer = t
    with caplog.at_level(logging.INFO, logger="rtvp"):
        for epoch, steps in enumerate(([2.0, 4.0, 0.0], [1.0])):  # the last batch of epoch 1 holds no box
            t.epoch = epoch
            hook.before_epoch()
            for box in steps:
                t.step += 1
                t.last_losses = {"box": box, "cls": 2 * box}
                hook.after_step()
            hook.after_epoch()
    assert _summaries(caplog) == ["epoch 1/2 step 3 | box 2 cls 4", "epoch 2/2 step 4 | box 1 cls 2"]


def test_mid_epoch_resume_keeps_the_whole_epoch_mean(caplog):
    first, t = ProgressHook(enabled=False), _trainer()
    first.trainer = t
    for box in (2.0, 4.0):  # two steps, then a checkpoint and a kill
        t.step += 1
        t.last_losses = {"box": box}
        first.after_step()
    state = first.state_dict()
    assert state == {"sums": {"box": 6.0}, "count": 2}
    resumed = ProgressHook(enabled=False)
    resumed.trainer = t
    resumed.load_state_dict(state)
    t.step, t.last_losses = 3, {"box": 0.0}
    resumed.after_step()
    with caplog.at_level(logging.INFO, logger="rtvp"):
        resumed.after_epoch()
    assert _summaries(caplog) == ["epoch 1/2 step 3 | box 2"]  # (2 + 4 + 0) / 3, not the resumed step's 0
