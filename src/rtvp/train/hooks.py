"""Training hooks: schedule, EMA, L_dp termination, evaluation, early stopping, checkpointing.

Logging hooks live in :mod:`rtvp.train.loggers`.

Hooks follow detectron2's ``HookBase``: the trainer calls ``before_train``, ``before_epoch``, ``before_step``,
``after_step``, ``after_epoch`` and ``after_train`` on every hook in registration order; a hook with state returns
it from ``state_dict()`` (tensors and primitive containers only) and it is saved in checkpoints under
``ckpt["hooks"][hook.name]``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtvp.checkpoint import save_checkpoint
from rtvp.train.distributed import barrier, broadcast_object
from rtvp.train.optim import WarmupCosine

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from rtvp.train.trainer import Trainer

LOGGER = logging.getLogger("rtvp.train")

EvalFn = Callable[["nn.Module"], dict[str, Any]]
"""``eval_fn(model) -> metrics``: runs the (EMA) model on the validation set; injected by the composition root."""


class HookBase:
    """Base class of training hooks; every method is a no-op. ``self.trainer`` is set on registration."""

    name: str = ""
    trainer: Trainer

    def before_train(self) -> None:
        """Called once before the first step (after a resume has been loaded)."""

    def before_epoch(self) -> None:
        """Called at the start of every epoch."""

    def before_step(self) -> None:
        """Called before every optimisation step."""

    def after_step(self) -> None:
        """Called after every step; ``trainer.last_losses`` holds the rank-averaged loss terms."""

    def after_epoch(self) -> None:
        """Called after the last step of an epoch (``trainer.epoch`` is the finished epoch, 0-based)."""

    def after_train(self) -> None:
        """Called once at the end, also when training fails (``trainer.failed`` is then True)."""

    def state_dict(self) -> dict[str, Any] | None:
        """State to checkpoint, or ``None`` for a stateless hook."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


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


class DPTerminationHook(HookBase):
    """Stops optimising L_dp once its running mean falls below ``eps`` (paper §4.3.2; logged as an event).

    The running mean is an exponential average (momentum ``momentum``, bias-corrected) of the rank-averaged ``dp``
    term divided by its loss gain, checked after ``min_steps`` steps. Calls ``model.set_dp_active(False)``.

    Args:
        eps: termination threshold on the mean L_dp.
        gain: the criterion's L_dp gain (the logged ``dp`` term is ``gain * L_dp``).
        momentum: running-mean momentum.
        min_steps: steps before the first check.
    """

    name = "dp"

    def __init__(self, eps: float, gain: float = 1.0, momentum: float = 0.9, min_steps: int = 10) -> None:
        self.eps, self.gain, self.momentum, self.min_steps = eps, gain, momentum, min_steps
        self.mean, self.count, self.active, self.stopped_at = 0.0, 0, True, -1

    def after_step(self) -> None:
        """Update the running mean and terminate L_dp when it is low enough."""
        value = self.trainer.last_losses.get("dp")
        if not self.active or value is None or self.gain <= 0:
            return
        self.count += 1
        self.mean = self.momentum * self.mean + (1 - self.momentum) * value / self.gain
        corrected = self.mean / (1 - self.momentum**self.count)
        if self.count >= self.min_steps and corrected < self.eps:
            self._deactivate()
            self.stopped_at = self.trainer.step
            LOGGER.info("L_dp early termination at step %d (epoch %d): running mean %.3g < eps %.3g",
                        self.trainer.step, self.trainer.epoch + 1, corrected, self.eps)

    def _deactivate(self) -> None:
        self.active = False
        self.trainer.bare_model.set_dp_active(False)

    def state_dict(self) -> dict[str, Any]:
        """Running mean, sample count, active flag and the step of termination (-1 if still active)."""
        return {"mean": self.mean, "count": self.count, "active": self.active, "stopped_at": self.stopped_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the running mean; re-applies a past termination to the model."""
        self.mean, self.count, self.stopped_at = float(state["mean"]), int(state["count"]), int(state["stopped_at"])
        if not state["active"]:
            self._deactivate()


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

    ``last.pt`` every epoch (and every ``save_iters`` steps), ``best.pt`` when ``metric`` improves (the final
    weights when no evaluation ran), ``epoch{N}.pt`` every ``save_period`` epochs.

    Args:
        weights_dir: destination folder.
        metric: key in ``trainer.metrics`` that selects ``best.pt``.
        save_period: keep ``epoch{N}.pt`` every N epochs (0 disables).
        save_iters: refresh ``last.pt`` every N steps inside an epoch (0 disables).
    """

    name = "checkpoint"

    def __init__(self, weights_dir: Path, metric: str = "AP", save_period: int = 0, save_iters: int = 0) -> None:
        self.dir, self.metric, self.save_period, self.save_iters = Path(weights_dir), metric, save_period, save_iters
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
        names = ["last.pt"]
        value = t.metrics.get(self.metric) if t.metrics_epoch == t.epoch else None
        if t.metrics_epoch == t.epoch and value is None and t.dist.is_main and not self._warned:
            self._warned = True
            LOGGER.warning("metric '%s' not in the evaluation results %s; best.pt will be the last weights "
                           "(set best_metric to one of them)", self.metric, sorted(t.metrics)[:12])
        if value is not None and float(value) > self.best:
            self.best = float(value)
            names.append("best.pt")
            if t.dist.is_main:
                LOGGER.info("epoch %d: new best %s %.4f -> best.pt", t.epoch + 1, self.metric, self.best)
        if self.save_period and (t.epoch + 1) % self.save_period == 0:
            names.append(f"epoch{t.epoch + 1}.pt")
        ckpt = t.checkpoint_state()  # collective (RNG gather): every rank calls it
        self._write(ckpt, names)

    def after_train(self) -> None:
        """Without any evaluation, ``best.pt`` is the final weights."""
        t = self.trainer
        if not t.failed and self.best == -math.inf and t.dist.is_main and (self.dir / "last.pt").is_file():
            (self.dir / "best.pt").write_bytes((self.dir / "last.pt").read_bytes())

    def _write(self, ckpt: dict[str, Any], names: list[str]) -> None:
        if self.trainer.dist.is_main:
            save_checkpoint(ckpt, *(self.dir / n for n in names))

    def state_dict(self) -> dict[str, Any]:
        """Best metric value so far."""
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the best value."""
        self.best = float(state["best"])
