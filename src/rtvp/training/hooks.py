"""Training hooks: schedule, EMA, evaluation, early stopping, checkpointing.

Logging hooks live in :mod:`rtvp.training.loggers`.

Hooks subclass :class:`rtvp.training.trainer.HookBase` (detectron2's ``HookBase``): the trainer calls
``before_train``, ``before_epoch``, ``before_step``, ``after_step``, ``after_epoch`` and ``after_train`` on every
hook in registration order; a hook with state returns it from ``state_dict()`` (tensors and primitive containers
only) and it is saved in checkpoints under ``ckpt["hooks"][hook.name]``. Model-specific hooks (RTVPNet's L_dp
termination) live with the stage that needs them (:mod:`rtvp.training.stages`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rtvp.checkpoint import load_checkpoint, save_checkpoint, strip_checkpoint
from rtvp.training.distributed import barrier, broadcast_object
from rtvp.training.optim import WarmupCosine
from rtvp.training.trainer import LOGGER, EvalFn, HookBase


class LRScheduleHook(HookBase):
    """Sets every param group's lr before each step: linear warm-up, then cosine to ``final`` (per iteration)."""

    name = "lr"

    def __init__(self, warmup_epochs: float, warmup_iters: int, final: float) -> None:
        self.warmup_epochs, self.warmup_iters, self.final = warmup_epochs, warmup_iters, final
        self.schedule: WarmupCosine | None = None

    def before_train(self) -> None:
        """Build the schedule from the run length."""
        t = self.trainer
        warm = self.warmup_iters or round(self.warmup_epochs * t.iters_per_epoch)
        self.schedule = WarmupCosine(t.max_epochs * t.iters_per_epoch, warm, self.final)

    def before_step(self) -> None:
        """Apply the lr of the coming step."""
        assert self.schedule is not None
        self.schedule.apply(self.trainer.optimizer, self.trainer.step)


class EMAHook(HookBase):
    """Updates ``trainer.ema`` after every step; its state is the EMA ramp position."""

    name = "ema"

    def after_step(self) -> None:
        """Fold the new weights into the average."""
        self.trainer.ema.update(self.trainer.model)

    def state_dict(self) -> dict[str, Any]:
        """The number of EMA updates (the averaged weights are saved under ``ckpt["ema"]``)."""
        return {"updates": self.trainer.ema.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the ramp position."""
        self.trainer.ema.updates = int(state["updates"])


class EvalHook(HookBase):
    """Runs ``eval_fn(trainer.eval_model)`` every ``period`` epochs and after the last one (rank 0 only).

    Metrics are broadcast to every rank (so early stopping agrees) and stored in ``trainer.metrics``. The trainer
    never imports the evaluator: ``eval_fn`` is composed by the caller (detectron2's ``EvalHook(period, fn)``).

    Args:
        period: evaluation period in epochs (0 disables).
        eval_fn: ``model -> {metric: value}``; the model is in eval mode.
    """

    name = "eval"

    def __init__(self, period: int, eval_fn: EvalFn) -> None:
        self.period, self.eval_fn = period, eval_fn

    def after_epoch(self) -> None:
        """Evaluate when due."""
        t = self.trainer
        done = t.epoch + 1
        if self.period <= 0 or not (done % self.period == 0 or done == t.max_epochs):
            return
        metrics: dict[str, Any] = {}
        if t.dist.is_main:
            model = t.eval_model
            was_training = model.training
            model.eval()
            try:
                metrics = dict(self.eval_fn(model))
            finally:
                model.train(was_training)
        t.metrics = broadcast_object(metrics)
        t.metrics_epoch = t.epoch
        barrier()


class EarlyStopHook(HookBase):
    """Stops training after ``patience`` evaluations without improving ``metric`` (higher is better).

    Args:
        metric: key in ``trainer.metrics``.
        patience: evaluations without improvement before stopping (0 disables).
    """

    name = "early_stop"

    def __init__(self, metric: str, patience: int) -> None:
        self.metric, self.patience = metric, patience
        self.best, self.best_epoch, self.bad = -math.inf, -1, 0

    def before_train(self) -> None:
        """A run resumed after its early stop stays stopped."""
        if self.patience and self.bad >= self.patience:
            self.trainer.request_stop(f"early stop already reached (best {self.metric} {self.best:.4f} at epoch "
                                      f"{self.best_epoch + 1})")

    def after_epoch(self) -> None:
        """Count evaluations without improvement; request a stop at ``patience``."""
        t = self.trainer
        if t.metrics_epoch != t.epoch or self.metric not in t.metrics:
            return
        value = float(t.metrics[self.metric])
        if value > self.best:
            self.best, self.best_epoch, self.bad = value, t.epoch, 0
            return
        self.bad += 1
        if self.patience and self.bad >= self.patience:
            t.request_stop(f"early stop: {self.metric} has not improved for {self.bad} evaluations "
                           f"(best {self.best:.4f} at epoch {self.best_epoch + 1})")

    def state_dict(self) -> dict[str, Any]:
        """Best value, its epoch and the count of evaluations without improvement."""
        return {"best": self.best, "best_epoch": self.best_epoch, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the counters."""
        self.best, self.best_epoch, self.bad = float(state["best"]), int(state["best_epoch"]), int(state["bad"])


class CheckpointHook(HookBase):
    """Writes ``weights/last.pt``, ``best.pt`` and ``epoch{N}.pt`` (rank 0; all ranks gather RNG states).

    ``last.pt`` every ``last_period`` epochs and after the final one (and every ``save_iters`` steps), ``best.pt``
    when ``metric`` improves (the final weights when no evaluation ran), ``epoch{N}.pt`` every ``save_period`` epochs.

    Args:
        weights_dir: destination folder.
        metric: key in ``trainer.metrics`` that selects ``best.pt``.
        save_period: keep ``epoch{N}.pt`` every N epochs (0 disables).
        save_iters: refresh ``last.pt`` every N steps inside an epoch (0 disables).
        last_period: refresh ``last.pt`` every N epochs; the final epoch (or an early stop) is always saved, so 0
            saves only then. A resumed run restarts from the last save.
    """

    name = "checkpoint"

    def __init__(self, weights_dir: Path, metric: str = "AP", save_period: int = 0, save_iters: int = 0,
                 last_period: int = 1) -> None:
        self.dir, self.metric, self.save_period, self.save_iters = Path(weights_dir), metric, save_period, save_iters
        self.last_period = last_period
        self.best = -math.inf
        self._warned = False

    def after_step(self) -> None:
        """Mid-epoch refresh of ``last.pt``."""
        t = self.trainer
        if self.save_iters and t.step % self.save_iters == 0 and t.epoch_iter < t.iters_per_epoch:
            self._write(t.checkpoint_state(), ["last.pt"])

    def after_epoch(self) -> None:
        """Epoch-end checkpoints."""
        t = self.trainer
        done = t.epoch + 1
        final = done >= t.max_epochs or bool(t.stop_reason)
        names = ["last.pt"] if final or (self.last_period and done % self.last_period == 0) else []
        value = t.metrics.get(self.metric) if t.metrics_epoch == t.epoch else None
        if t.metrics_epoch == t.epoch and value is None and t.dist.is_main and not self._warned:
            self._warned = True
            LOGGER.warning("metric '%s' not in the evaluation results %s; best.pt will be the last weights "
                           "(set best_metric to one of them)", self.metric, sorted(t.metrics)[:12])
        if value is not None and float(value) > self.best:
            self.best = float(value)
            names += ["last.pt", "best.pt"] if not names else ["best.pt"]
            if t.dist.is_main:
                LOGGER.info("epoch %d: new best %s %.4f -> best.pt", done, self.metric, self.best)
        if self.save_period and done % self.save_period == 0:
            names.append(f"epoch{done}.pt")
        if not names:
            return
        ckpt = t.checkpoint_state()  # collective (RNG gather): every rank calls it
        self._write(ckpt, names)

    def after_train(self) -> None:
        """Strip a finished run's ``best.pt`` (``rtvp.checkpoint.strip_checkpoint``; the final weights if no eval)."""
        t = self.trainer
        if t.failed or t.epoch == 0:
            return
        best = self.dir / "best.pt"
        if self.best == -math.inf:
            ckpt = t.checkpoint_state()  # collective (RNG gather): every rank calls it
            if t.dist.is_main:
                save_checkpoint(strip_checkpoint(ckpt), best)
        elif t.dist.is_main and best.is_file():
            save_checkpoint(strip_checkpoint(load_checkpoint(best)), best)

    def _write(self, ckpt: dict[str, Any], names: list[str]) -> None:
        if self.trainer.dist.is_main:
            save_checkpoint(ckpt, *(self.dir / n for n in names))

    def state_dict(self) -> dict[str, Any]:
        """Best metric value so far."""
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the best value."""
        self.best = float(state["best"])
