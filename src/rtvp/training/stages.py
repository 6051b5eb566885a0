"""The two training stages on a real benchmark (paper §4.3).

Stage 1 ("expert") trains ``ExpertDetector`` as a closed-set detector on the seen classes (all classes for the
closed protocol; vocabulary "all"). Stage 2 ("full") builds ``RTVPNet``, copies the stage-1 expert into it
(``rtvp.models.transfer.load_expert``), and trains the whole model: the text encoder frozen (its class embeddings
are computed once per run), the SAM encoder frozen when official weights are loaded, the expert at the coupling
learning rate, and L_dp switched off once its running mean drops below ``dp_eps`` (:class:`DPTerminationHook`).

Evaluation is injected (``make_eval``): this module never imports the evaluator.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rtvp.checkpoint import load_checkpoint
from rtvp.config import to_dict
from rtvp.data import DetectionDataset, build_dataloader
from rtvp.device import resolve_device, resolve_workers
from rtvp.errors import CheckpointError, ConfigError
from rtvp.loss import DetectionCriterion
from rtvp.models import ExpertDetector, build_model
from rtvp.models.text.base import encode_class_ensembles
from rtvp.models.text.spec import check_text_encoder, encoder_from_spec
from rtvp.models.transfer import freeze_expert, load_expert
from rtvp.training.config import TrainConfig
from rtvp.training.distributed import DistInfo, barrier, init_distributed
from rtvp.training.runner import TrainParts, fit, per_rank_batch, seed_everything
from rtvp.training.trainer import LOGGER, EvalFn, HookBase


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


EvalFactory = Callable[[str, dict[str, Any]], EvalFn | None]
"""``make_eval(stage, meta) -> eval_fn | None``; ``meta`` is the stage's checkpoint metadata (categories,
vocabulary, ``text_embeddings``), so the evaluation maps logits to the same classes the stage trains."""


def dataset_channels(cfg: TrainConfig) -> int | None:
    """Dataset ``channels`` for the model's ``in_channels``: 1 (luminance), 3 (RGB) or as stored (other counts)."""
    return cfg.model.in_channels if cfg.model.in_channels in (1, 3) else None


def train_vocab(cfg: TrainConfig, stage: str) -> str:
    """Per-batch vocabulary mode: "all" for the expert and the closed protocol, "sampled" for open (or forced)."""
    if stage == "expert":
        return "all"
    if cfg.vocab != "auto":
        return cfg.vocab
    return "all" if cfg.protocol == "closed" else "sampled"


def build_train_set(cfg: TrainConfig, stage: str) -> DetectionDataset:
    """Augmented training split ``<protocol>_train`` of ``cfg.data``."""
    if cfg.data is None:
        raise ConfigError("no benchmark given: pass --data BENCH (a folder built with `rtvp data build`)")
    vocab = train_vocab(cfg, stage)
    augment = dataclasses.asdict(cfg.augment) | {"mosaic_stop_epoch": cfg.mosaic_stop(stage)}
    ds = DetectionDataset(cfg.data, f"{cfg.protocol}_train", cfg.protocol, imgsz=cfg.imgsz, augment=True,
                          vocab=vocab, vocab_size=0 if vocab == "all" else cfg.vocab_size,
                          channels=dataset_channels(cfg), seed=cfg.seed, masks=cfg.model.masks, **augment)
    if ds.channels != cfg.model.in_channels:
        raise ConfigError(f"{cfg.data}: images have {ds.channels} channels but model.in_channels is "
                          f"{cfg.model.in_channels}; set --set model.in_channels={ds.channels}")
    return ds


def make_loader(cfg: TrainConfig, ds: DetectionDataset, dist: DistInfo) -> torch.utils.data.DataLoader:
    """Resumable, sharded training loader (per-rank batch)."""
    device = resolve_device(cfg.device, dist.local_rank)
    return build_dataloader(ds, per_rank_batch(cfg, dist), shuffle=True, workers=resolve_workers(cfg.workers, device),
                            seed=cfg.seed, distributed=dist.distributed, pin_memory=device.type == "cuda")


def class_text_table(cfg: TrainConfig, texts: list[str], dist: DistInfo,
                     categories: list[dict[str, Any]] | None = None) -> torch.Tensor:
    """``(C, Dt)`` frozen embeddings of the class texts (rank 0 fills the disk cache first).

    With ``cfg.class_text == "ensemble"`` and the ``categories`` of ``texts`` (aligned), each row is the mean
    embedding of the category's phrasings (``rtvp.vocabulary.class_text_variants``) instead of its text's.
    """
    encoder = encoder_from_spec(cfg.model.text_encoder)
    if cfg.class_text == "ensemble" and categories is not None:
        def encode() -> torch.Tensor:
            return encode_class_ensembles(encoder, categories)
    else:
        def encode() -> torch.Tensor:
            return encoder.encode(texts)
    table = encode() if dist.is_main else None
    barrier()
    return (table if table is not None else encode()).float().cpu()


def expert_parts(cfg: TrainConfig, make_eval: EvalFactory | None, dist: DistInfo) -> TrainParts:
    """Stage 1: ``ExpertDetector`` with ``nc`` = allowed (seen) classes; logits column j is ``categories[j]``."""
    ds = build_train_set(cfg, "expert")
    allowed = [int(i) for i in ds.allowed]
    model = ExpertDetector(cfg.model.scale, cfg.model.in_channels, nc=len(allowed), reg_max=cfg.model.reg_max,
                           masks=cfg.model.masks)
    meta = {"arch": "expert", "model_config": to_dict(cfg.model), "nc": len(allowed),
            "vocabulary": [ds.class_texts[i] for i in allowed], "categories": [ds.categories[i] for i in allowed],
            "text_encoder": None, "text_dim": 0, "text_embeddings": None}
    eval_fn = make_eval("expert", meta) if make_eval is not None else None
    return TrainParts(model=model, criterion=DetectionCriterion(**cfg.loss.criterion_kwargs()),
                      loader=make_loader(cfg, ds, dist),
                      eval_fn=eval_fn, meta=meta)


def load_expert_weights(path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Stage-1 weights (EMA when present) and class texts (logit order) from an expert checkpoint."""
    ckpt = load_checkpoint(path)
    if ckpt.get("arch") != "expert":
        raise CheckpointError(f"{path}: expected a stage-1 expert checkpoint (arch 'expert'), got arch "
                              f"{ckpt.get('arch')!r}")
    state = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    return state, [str(t) for t in ckpt.get("vocabulary") or []]


def expert_text_rows(cfg: TrainConfig, expert_vocab: list[str], texts: list[str], table: torch.Tensor,
                     dist: DistInfo) -> torch.Tensor:
    """``(nc, Dt)`` embeddings of the expert's classes, in its logit order.

    Rows of ``table`` (the embeddings of ``texts``) when every class is among them, so nothing is encoded twice;
    otherwise (an expert trained on another benchmark) the classes are encoded.
    """
    row = {t: i for i, t in enumerate(texts)}
    if all(t in row for t in expert_vocab):
        return table[[row[t] for t in expert_vocab]]
    return class_text_table(cfg, expert_vocab, dist)


def full_parts(cfg: TrainConfig, make_eval: EvalFactory | None, expert_ckpt: Path | None,
               dist: DistInfo) -> TrainParts:
    """Stage 2: ``RTVPNet`` with the stage-1 expert, frozen class-text table and the coupling lr."""
    ds = build_train_set(cfg, "full")
    table = class_text_table(cfg, ds.class_texts, dist, list(ds.categories))
    model = build_model(cfg.model, text_dim=table.shape[1])
    if expert_ckpt is not None:
        state, expert_vocab = load_expert_weights(Path(expert_ckpt))
        class_text = expert_text_rows(cfg, expert_vocab, ds.class_texts, table, dist) \
            if cfg.expert_head_init and expert_vocab else None
        copied = load_expert(model, state, class_text=class_text)
        if dist.is_main:
            LOGGER.info("stage 2 starts from the expert in %s (%s tensors copied)", expert_ckpt, copied)
    elif dist.is_main:
        LOGGER.warning("stage 2 without a pre-trained expert (stage=full and no expert_weights): the expert starts "
                       "from random weights")
    if not cfg.expert_update:
        freeze_expert(model)
    criterion = DetectionCriterion(**cfg.loss.criterion_kwargs())
    meta = {"arch": "rtvpnet", "model_config": to_dict(cfg.model), "vocabulary": list(ds.class_texts),
            "categories": list(ds.categories), "text_encoder": cfg.model.text_encoder.to_meta(),
            "text_dim": table.shape[1],
            "text_embeddings": table}
    eval_fn = make_eval("full", meta) if make_eval is not None else None
    has_dp = cfg.model.edp and cfg.model.sam
    dp_hooks = [DPTerminationHook(cfg.dp_eps, gain=criterion.gains["dp"])] if has_dp else []
    return TrainParts(model=model, criterion=criterion, loader=make_loader(cfg, ds, dist), text_table=table,
                      eval_fn=eval_fn, meta=meta, expert_lr_ratio=cfg.coupling_ratio,
                      model_hooks=dp_hooks, find_unused_parameters=True)


def stage_dirs(cfg: TrainConfig) -> dict[str, Path]:
    """Run folder of each stage: ``<run>/expert`` for stage 1 of a two-stage run, ``<run>`` otherwise."""
    run = cfg.run_dir
    if len(cfg.stages) == 2:
        return {"expert": run / "expert", "full": run}
    return {cfg.stages[0]: run}


def train(cfg: TrainConfig, *, resume: bool = False, make_eval: EvalFactory | None = None) -> dict[str, Any]:
    """Train the stages of ``cfg`` (``rtvp train``); under ``torchrun`` every rank calls this.

    Args:
        cfg: the run config.
        resume: continue from the stages' ``weights/last.pt`` (a finished stage 1 is not re-run).
        make_eval: builds each stage's evaluation function (``None``: no evaluation, ``best.pt`` = last).

    Returns:
        ``{stage: {"run_dir", "best", "metrics"}}`` for the stages trained in this call.
    """
    if "full" in cfg.stages:  # a bad text-encoder name or weights path fails now, not after stage 1 has trained
        check_text_encoder(cfg.model.text_encoder, "model.text_encoder")
    dist = init_distributed(cfg.device)
    dirs, out = stage_dirs(cfg), {}
    expert_ckpt = cfg.expert_weights
    two_stage = len(cfg.stages) == 2
    for stage in cfg.stages:
        run_dir = dirs[stage]
        last = run_dir / "weights" / "last.pt"
        seed_everything(cfg.seed)  # same initial weights on every rank and in every run with this seed
        if stage == "expert":
            if resume and two_stage and (dirs["full"] / "weights" / "last.pt").is_file():
                expert_ckpt = run_dir / "weights" / "best.pt"  # stage 2 already started: stage 1 is done
                continue
            parts = expert_parts(cfg, make_eval, dist)
        else:
            parts = full_parts(cfg, make_eval, expert_ckpt, dist)
        epochs = cfg.stage_epochs(stage)
        if dist.is_main:
            LOGGER.info("stage %s: %s -> %s (%d epochs)", stage, cfg.model_name, run_dir, epochs)
            if resume and not last.is_file():
                LOGGER.warning("--resume: %s not found (the run stopped before stage %s saved a checkpoint); this "
                               "stage starts from epoch 1", last, stage)
        trainer = fit(cfg, parts, run_dir, epochs=epochs, resume=resume and last.is_file(), dist=dist)
        out[stage] = {"run_dir": run_dir, "best": run_dir / "weights" / "best.pt", "metrics": trainer.metrics}
        if stage == "expert":
            expert_ckpt = run_dir / "weights" / "best.pt"
        del parts, trainer  # stops this stage's persistent loader workers before the next stage forks its own
        gc.collect()
        barrier()
    return out
