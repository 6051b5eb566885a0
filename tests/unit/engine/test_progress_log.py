"""The console epoch summary shows each loss term's mean over the epoch, like results.csv (not the last step's)."""

import logging
from types import SimpleNamespace

from rtvp.engine.loggers import ProgressHook


def test_epoch_summary_is_the_epoch_mean(caplog):
    hook = ProgressHook(enabled=False)
    t = SimpleNamespace(dist=SimpleNamespace(is_main=True), epoch=0, max_epochs=2, step=0, metrics_epoch=-1,
                        metrics={}, last_losses={})
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
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert lines == ["epoch 1/2 step 3 | box 2 cls 4", "epoch 2/2 step 4 | box 1 cls 2"]
