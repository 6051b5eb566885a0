"""The training loop: model + data + optimizer + criterion; every other feature is a hook.

Follows detectron2's ``SimpleTrainer``: :meth:`Trainer.run_step` is the whole optimisation step (forward, loss,
NaN guard, backward, clipping, optimizer step) and :mod:`rtvp.training.hooks` does the rest (schedule, EMA,
evaluation, checkpoints, logging). The trainer knows nothing about benchmarks or the evaluator.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.profiler import record_function
from torch.utils.data import DataLoader

from rtvp import __version__
from rtvp.checkpoint import CHECKPOINT_FORMAT, capture_rng, restore_rng
from rtvp.errors import RtvpError
from rtvp.structures import Batch
from rtvp.training.distributed import DistInfo, all_gather_object, all_reduce_mean
from rtvp.training.ema import ModelEMA

if TYPE_CHECKING:  # pragma: no cover
    from rtvp.models.outputs import RawOutputs

Criterion = Callable[["RawOutputs", Batch], dict[str, torch.Tensor]]

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


class NonFiniteLossError(RtvpError, FloatingPointError):
    """The loss became NaN/Inf; training stops instead of corrupting the weights."""


class Trainer:
    """Epoch-based trainer over a loader of :class:`~rtvp.structures.Batch`.

    Args:
        model: the bare model: ``model(images)`` (closed-set expert) or ``model(images, text, text_mask)``.
        criterion: ``(RawOutputs, Batch) -> {"loss": total, <term>: detached}``.
        loader: training loader whose sampler has ``set_epoch(epoch, start=samples_to_skip)`` (this rank's
            shard): ``rtvp.data.build_dataloader`` or :func:`rtvp.training.distributed.make_loader`.
        optimizer: optimizer over the model's trainable parameters (groups carry ``initial_lr``).
        epochs: number of epochs.
        device: training device.
        text_table: ``(C, Dt)`` frozen class-text embeddings (category order) or ``None`` for a text-free model;
            each step uses ``text = table[vocab_ids.clamp(min=0)]`` and ``text_mask = vocab_ids >= 0``.
        amp: autocast dtype of the forward pass (``torch.float16`` with a ``GradScaler`` on CUDA,
            ``torch.bfloat16`` on CPU or CUDA) or ``None``/``False`` for fp32; ``True`` means float16 on CUDA. The
            loss is computed in fp32 either way.
        channels_last: NHWC memory format for the model and the images.
        grad_clip: max gradient norm (0 disables).
        ema: a :class:`ModelEMA` (updated by ``EMAHook``) or ``None``.
        seed: base seed (used to reseed when a checkpoint's RNG states cannot be restored).
        dist: rank info; with ``world_size > 1`` the model is wrapped in DDP.
        find_unused_parameters: DDP flag (needed when parts of the graph can go unused, e.g. after L_dp stops).
        meta: extra checkpoint entries (``model_config``, ``vocabulary``, ``categories``, ...).
    """

    def __init__(self, model: nn.Module, criterion: Criterion, loader: DataLoader, optimizer: torch.optim.Optimizer,
                 *, epochs: int, device: torch.device | str, text_table: torch.Tensor | None = None,
                 amp: bool | torch.dtype | None = None, channels_last: bool = False, grad_clip: float = 0.0,
                 ema: ModelEMA | None = None, seed: int = 0,
                 dist: DistInfo | None = None, find_unused_parameters: bool = False,
                 meta: dict[str, Any] | None = None) -> None:
        self.device = torch.device(device)
        self.dist = dist or DistInfo()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.bare_model = model.to(self.device, memory_format=self.memory_format).train()
        self.model: nn.Module = self.bare_model
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.bare_model, device_ids=ids,
                                                             find_unused_parameters=find_unused_parameters)
        self.criterion, self.optimizer, self.ema, self.loader = criterion, optimizer, ema, loader
        self.text_table = None if text_table is None else text_table.to(self.device)
        if amp is True:
            amp = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.amp_dtype: torch.dtype | None = amp or None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.grad_clip, self.seed = grad_clip, seed
        loader.sampler.set_epoch(0, start=0)
        self.iters_per_epoch = len(loader)
        if self.iters_per_epoch < 1:
            raise ValueError("the training loader yields no batch (empty dataset?)")
        self.max_epochs, self.meta = epochs, dict(meta or {})
        self.epoch, self.epoch_iter, self.step, self.last_batch_size = 0, 0, 0, 0
        self.hooks: list[HookBase] = []
        self.last_losses: dict[str, float] = {}
        self.metrics: dict[str, Any] = {}
        self.metrics_epoch = -1
        self.stop_reason = ""
        self.failed = False

    # ----------------------------------------------------------------------------------------------- hooks & loop
    def register_hooks(self, hooks: Iterable[HookBase]) -> None:
        """Append hooks (called in this order) and give each a reference to the trainer."""
        for h in hooks:
            h.trainer = self
            self.hooks.append(h)

    def _call(self, method: str) -> None:
        for h in self.hooks:
            getattr(h, method)()

    def request_stop(self, reason: str) -> None:
        """Stop at the end of the current epoch (used by early stopping)."""
        self.stop_reason = reason

    @property
    def eval_model(self) -> nn.Module:
        """The model to evaluate and ship: the EMA weights when EMA is on, else the trained model."""
        return self.ema.module if self.ema is not None else self.bare_model

    def train(self) -> None:
        """Run (or continue, after :meth:`load_state_dict`) training to ``epochs`` or an early stop."""
        self._call("before_train")
        try:
            while self.epoch < self.max_epochs and not self.stop_reason:
                self._call("before_epoch")
                for batch in self._epoch_batches():
                    self._call("before_step")
                    self.last_losses = self.run_step(batch)
                    self.epoch_iter += 1
                    self._call("after_step")
                self._call("after_epoch")
                self.epoch, self.epoch_iter = self.epoch + 1, 0
            if self.stop_reason and self.dist.is_main:
                LOGGER.info(self.stop_reason)
        except BaseException:
            self.failed = True
            raise
        finally:
            self._call("after_train")

    def _epoch_batches(self) -> Iterator[Batch]:
        """This rank's batches of the current epoch, starting after the ``epoch_iter`` already done."""
        self.loader.sampler.set_epoch(self.epoch, start=self.epoch_iter * self.loader.batch_size)
        return iter(self.loader)

    # ------------------------------------------------------------------------------------------------- the step
    def run_step(self, batch: Batch) -> dict[str, float]:
        """One optimisation step on ``batch``; returns the loss terms averaged over ranks (python floats)."""
        batch = batch.to(self.device, non_blocking=True)
        self.last_batch_size = batch.images.shape[0]
        images = batch.images.contiguous(memory_format=self.memory_format)
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()
        with autocast, record_function("rtvp/forward"):
            if self.text_table is None:
                outputs = self.model(images)
            else:
                vocab = batch.vocab_ids
                outputs = self.model(images, self.text_table[vocab.clamp(min=0)], vocab >= 0)
        with record_function("rtvp/loss"):
            losses = self.criterion(outputs.float(), batch)  # assignment and losses in fp32
        keys = sorted(losses)
        items = all_reduce_mean(torch.stack([losses[k].detach().float() for k in keys]))
        values = dict(zip(keys, items.tolist(), strict=True))
        if not all(math.isfinite(v) for v in values.values()):
            terms = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
            raise NonFiniteLossError(
                f"non-finite loss at step {self.step + 1} (epoch {self.epoch + 1}, batch {self.epoch_iter + 1}, "
                f"images {batch.image_ids}): {terms}. Training stopped before the weights were corrupted; try a "
                "lower lr (--set lr=...), grad clipping (--set grad_clip=10), amp off (--set amp=false), or check "
                "the data (rtvp data check)."
            )
        self.optimizer.zero_grad(set_to_none=True)
        with record_function("rtvp/backward"):
            self.scaler.scale(losses["loss"]).backward()
        with record_function("rtvp/optimizer"):
            if self.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.bare_model.parameters(), self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.step += 1
        return values

    # ------------------------------------------------------------------------------------------- checkpointing
    def position(self) -> tuple[int, int]:
        """``(completed epochs, batches done in the next epoch)`` at this moment."""
        if self.epoch_iter >= self.iters_per_epoch:
            return self.epoch + 1, 0
        return self.epoch, self.epoch_iter

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to resume exactly (collective under DDP: every rank must call it)."""
        rng = all_gather_object(capture_rng())
        epoch, epoch_iter = self.position()
        hooks = {h.name: s for h in self.hooks if (s := h.state_dict()) is not None}
        return {
            "version": __version__, "format": CHECKPOINT_FORMAT, **self.meta,
            "model": self.bare_model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(), "hooks": hooks,
            "epoch": epoch, "epoch_iter": epoch_iter, "step": self.step, "world_size": self.dist.world_size,
            "rng": rng,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Resume from a checkpoint written by :meth:`checkpoint_state` (after hooks are registered)."""
        self.bare_model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.module.load_state_dict(ckpt["ema"])
        for h in self.hooks:
            if h.name in ckpt.get("hooks", {}):
                h.load_state_dict(ckpt["hooks"][h.name])
        self.epoch, self.epoch_iter, self.step = int(ckpt["epoch"]), int(ckpt["epoch_iter"]), int(ckpt["step"])
        rng = ckpt.get("rng") or []
        if len(rng) == self.dist.world_size:
            restore_rng(rng[self.dist.rank])
        else:
            LOGGER.warning("checkpoint has RNG states of %d rank(s) but %d are running: random streams are reseeded,"
                           " so the resumed run will not match an uninterrupted one exactly", len(rng),
                           self.dist.world_size)
            torch.manual_seed(self.seed + self.step + self.dist.rank)
