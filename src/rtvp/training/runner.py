"""``fit``: build the optimizer, EMA and hooks of one training stage from a :class:`TrainConfig` and run it.

Generic over the components (:class:`TrainParts`), so tests drive it with toy models and datasets; the real
two-stage wiring (benchmark datasets, RTVPNet, text table) is :mod:`rtvp.training.stages`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from rtvp.checkpoint import load_checkpoint
from rtvp.config import dump_yaml, to_dict
from rtvp.device import autocast_dtype, resolve_device
from rtvp.errors import CheckpointError, ConfigError
from rtvp.training.config import TrainConfig
from rtvp.training.distributed import DistInfo, barrier, get_dist_info
from rtvp.training.ema import ModelEMA
from rtvp.training.hooks import (
    LOGGER,
    CheckpointHook,
    EarlyStopHook,
    EMAHook,
    EvalFn,
    EvalHook,
    HookBase,
    LRScheduleHook,
)
from rtvp.training.loggers import CSVLoggerHook, ProgressHook, TensorBoardHook
from rtvp.training.optim import build_optimizer
from rtvp.training.trainer import Criterion, Trainer


@dataclass
class TrainParts:
    """The components of one training stage.

    Attributes:
        model: bare model (``model(images)`` or ``model(images, text, text_mask)`` -> ``RawOutputs``).
        criterion: ``(RawOutputs, Batch) -> {"loss", <terms>}``.
        loader: training loader of ``Batch`` (per-rank batch size, see :func:`per_rank_batch`) whose sampler has
            ``set_epoch(epoch, start=...)``: ``rtvp.data.build_dataloader`` or ``distributed.make_loader``.
        text_table: ``(C, Dt)`` class-text embeddings in category order, ``None`` for a closed-set expert.
        eval_fn: ``model -> metrics`` run by :class:`EvalHook`; ``None`` disables evaluation.
        meta: checkpoint entries describing the model (``arch``, ``model_config``, ``vocabulary``, ``categories``,
            ``text_encoder``, ``text_dim``, ``text_embeddings``).
        expert_lr_ratio: lr ratio of the model's "expert" parameter group (the coupling ratio in stage 2).
        model_hooks: hooks the model needs (e.g. RTVPNet's L_dp termination), run right after the EMA hook.
        find_unused_parameters: DDP flag for models whose graph can leave parameters unused.
    """

    model: nn.Module
    criterion: Criterion
    loader: DataLoader
    text_table: torch.Tensor | None = None
    eval_fn: EvalFn | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    expert_lr_ratio: float = 1.0
    model_hooks: Sequence[HookBase] = ()
    find_unused_parameters: bool = False


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - augmentations may use the legacy global RNG
    torch.manual_seed(seed)


def per_rank_batch(cfg: TrainConfig, dist: DistInfo | None = None) -> int:
    """``cfg.batch`` is the global batch; each DDP rank loads ``batch / world_size`` samples per step."""
    dist = dist or get_dist_info()
    if cfg.batch % dist.world_size:
        raise ConfigError(f"batch={cfg.batch} must be divisible by the number of processes ({dist.world_size})")
    return cfg.batch // dist.world_size


def prepare_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool, dist: DistInfo) -> Path:
    """Check the run folder (no silent overwrite) and write ``config.yaml`` (rank 0). Returns ``last.pt``'s path."""
    last = run_dir / "weights" / "last.pt"
    if resume and not last.is_file():
        raise CheckpointError(f"--resume: {last} not found; start a new run without --resume")
    if not resume and last.is_file() and not cfg.exist_ok:
        raise ConfigError(f"{run_dir} already holds a run ({last}); pass --resume to continue it, another --out/"
                          "--name, or --set exist_ok=true to overwrite it")
    if dist.is_main:
        (run_dir / "weights").mkdir(parents=True, exist_ok=True)
        if not resume:
            for stale in (run_dir / "weights").glob("*.pt"):
                stale.unlink()
        dump_yaml(cfg, run_dir / "config.yaml")
    barrier()
    return last


def default_hooks(cfg: TrainConfig, parts: TrainParts, run_dir: Path, ema: bool) -> list[HookBase]:
    """The standard hook list, in call order (evaluation before early stop, logging and checkpointing)."""
    hooks: list[HookBase] = [LRScheduleHook(cfg.warmup_epochs, cfg.warmup_iters, cfg.lr_final)]
    if ema:
        hooks.append(EMAHook())
    hooks += parts.model_hooks
    if parts.eval_fn is not None and cfg.val_period > 0:
        hooks.append(EvalHook(cfg.val_period, parts.eval_fn))
        if cfg.patience > 0:
            hooks.append(EarlyStopHook(cfg.best_metric, cfg.patience))
    hooks.append(CSVLoggerHook(run_dir / "results.csv", run_dir / "results.png" if cfg.plots else None))
    if cfg.tensorboard:
        hooks.append(TensorBoardHook(run_dir / "tensorboard", cfg.log_period))
    hooks.append(ProgressHook())
    hooks.append(CheckpointHook(run_dir / "weights", cfg.best_metric, cfg.save_period, cfg.save_iters,
                                cfg.last_period))
    return hooks


def fit(cfg: TrainConfig, parts: TrainParts, run_dir: Path | None = None, *, epochs: int | None = None,
        resume: bool = False, extra_hooks: Sequence[HookBase] = (), dist: DistInfo | None = None) -> Trainer:
    """Train one stage into ``run_dir`` (``config.yaml``, ``results.csv``, ``weights/{last,best}.pt``, ...).

    Args:
        cfg: the training config (lr, schedule, EMA, clipping, AMP, batch, workers, seed, periods, ...).
        parts: model, criterion, data and checkpoint metadata of the stage.
        run_dir: the stage's run folder (default ``cfg.run_dir``).
        epochs: epochs of this stage (default ``cfg.epochs``).
        resume: continue from ``run_dir/weights/last.pt`` (model, EMA, optimizer, scaler, hooks, position, RNG).
        extra_hooks: hooks appended after the standard ones.
        dist: rank info (default: the initialised process group, if any).

    Returns:
        The trainer after training (``trainer.metrics`` holds the last evaluation).
    """
    dist = dist or get_dist_info()
    run_dir = Path(run_dir) if run_dir is not None else cfg.run_dir
    last = prepare_run_dir(run_dir, cfg, resume, dist)
    device = resolve_device(cfg.device, dist.local_rank)
    seed_everything(cfg.seed + dist.rank)
    optimizer = build_optimizer(parts.model, cfg.lr, cfg.weight_decay, parts.expert_lr_ratio)
    amp, why = autocast_dtype(device, cfg.amp)
    channels_last = amp is not None if cfg.channels_last is None else cfg.channels_last
    if dist.is_main:
        LOGGER.info("precision: %s; memory format: %s", why, "channels_last" if channels_last else "contiguous")
    meta = {"train_config": to_dict(cfg), **parts.meta}
    trainer = Trainer(parts.model, parts.criterion, parts.loader, optimizer, epochs=epochs or cfg.epochs,
                      device=device, text_table=parts.text_table, amp=amp, channels_last=channels_last,
                      grad_clip=cfg.grad_clip,
                      seed=cfg.seed, dist=dist, find_unused_parameters=parts.find_unused_parameters, meta=meta)
    if cfg.ema:  # after the DDP wrap, which broadcast rank 0's initial weights: every rank averages the same model
        trainer.ema = ModelEMA(trainer.bare_model, cfg.ema_decay, cfg.ema_tau)
    trainer.register_hooks(default_hooks(cfg, parts, run_dir, cfg.ema))
    trainer.register_hooks(extra_hooks)
    if resume:
        ckpt = load_checkpoint(last)
        trainer.load_state_dict(ckpt)
        if dist.is_main:
            LOGGER.info("resumed %s at epoch %d, step %d", last, trainer.epoch + 1, trainer.step)
    trainer.train()
    return trainer
