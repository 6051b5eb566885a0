"""``TrainConfig``: every training setting of ``rtvp train`` as one frozen, typed dataclass.

YAML files (``--config``) and ``--set key=value`` overrides go through :mod:`rtvp.config`, so unknown keys and
wrong types are errors naming the key. Each run writes its resolved config to ``<run>/config.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal

from rtvp.data.config import AugmentConfig
from rtvp.errors import ConfigError
from rtvp.loss.config import LossConfig
from rtvp.models.config import TRAINING_KEYS, ModelConfig
from rtvp.models.scales import SCALES

ARCHS = ("rtvpnet", "expert")


def parse_model_name(name: str) -> tuple[str, str]:
    """``"rtvpnet-n"`` -> ``("rtvpnet", "n")``; ``expert-<scale>`` is the closed-set expert alone.

    Raises:
        ConfigError: unknown architecture or scale (the message lists the valid names).
    """
    arch, _, scale = name.partition("-")
    if arch not in ARCHS or scale not in SCALES:
        valid = [f"{a}-{s}" for a in ARCHS for s in SCALES.names()]
        raise ConfigError(f"unknown model '{name}'; choose one of {valid}")
    return arch, scale


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (defaults follow the paper: AdamW, lr 2e-3, weight decay 0.025).

    Attributes:
        data: benchmark folder (holds ``benchmark.yaml`` and ``annotations/``).
        protocol: "closed" (all classes) or "open" (train on seen classes, evaluate unseen ones).
        arch: "rtvpnet" (the full model) or "expert" (the closed-set expert alone, i.e. stage 1 only); the scale
            is ``model.scale`` (``--model rtvpnet-n`` sets both).
        stage: "expert" (stage 1 only), "full" (stage 2 only) or "both" (stage 1 then stage 2); ignored (always
            "expert") when ``arch`` is "expert".
        expert_epochs: epochs of stage 1 (expert pre-training on seen classes).
        expert_weights: a stage-1 checkpoint to start stage 2 from (skips stage 1 when stage is "full").
        expert_head_init: start stage 2's embedding branch from the expert's class branch and the class texts
            (``rtvp.models.transfer.load_expert(..., class_text=...)``), so stage 2 begins ranking classes as the
            expert does instead of from a random classifier; ``false`` keeps the random embedding branch.
        epochs: epochs of the trained stage (stage 2 when stage is "both").
        batch: global batch size (split over DDP ranks).
        imgsz: training/eval image size (letterboxed square side, multiple of 32).
        lr: peak learning rate.
        lr_final: learning rate at the last step, as a fraction of ``lr`` (cosine schedule end point).
        weight_decay: AdamW decoupled weight decay (not applied to norms, biases and scalars).
        warmup_epochs: linear warm-up length in epochs (used when ``warmup_iters`` is 0).
        warmup_iters: linear warm-up length in optimizer steps (overrides ``warmup_epochs`` when > 0).
        ema: keep an exponential moving average of the weights (used for evaluation and ``best.pt``).
        ema_decay: asymptotic EMA decay.
        ema_tau: EMA decay ramp length in steps.
        grad_clip: max gradient L2 norm (0 disables clipping).
        amp: mixed precision; ``None`` (auto) = fp16 on CUDA, bf16 on a CPU with native bf16 (AMX / AVX-512 BF16),
            fp32 elsewhere; ``true`` forces it, ``false`` trains in fp32 (``--amp`` / ``--no-amp``). The loss, the
            assigner, the EMA and the checkpoint stay fp32.
        channels_last: NHWC memory format for the model and images (faster convolutions on CPU, notably with bf16);
            ``None`` = on when mixed precision is on.
        workers: dataloader worker processes per rank; ``None`` = :func:`rtvp.device.default_workers` (0 on a
            CPU with 2 cores or fewer, where workers slowed training: 4 workers 0.82x of none on a 2-core EPYC).
        seed: base random seed.
        device: "auto", "cpu", "cuda" or "cuda:N".
        vocab: per-batch vocabulary: "all" allowed classes, "sampled" (present + negatives), or "auto"
            ("all" for the closed protocol and the expert, "sampled" for the open protocol).
        vocab_size: vocabulary slots K of a batch (0: the number of allowed classes); padded with -1.
        class_text: how stage 2 embeds each class: "name" (its class text, as in the paper) or "ensemble" (the mean
            embedding of its phrasings: synonyms and a visual description, ``rtvp.vocabulary.class_text_variants``);
            the checkpoint stores the resulting rows, so evaluation and prediction use them for its classes.
        val_period: evaluate every N epochs (and after the last one); 0 disables evaluation.
        best_metric: metric key that selects ``best.pt`` and drives early stopping (higher is better).
        patience: stop after this many evaluations without improvement of ``best_metric`` (0 disables).
        save_period: also keep ``weights/epoch{N}.pt`` every N epochs (0 disables).
        save_iters: also refresh ``last.pt`` every N steps inside an epoch (0: only at epoch ends).
        last_period: refresh ``weights/last.pt`` (model, EMA, optimizer: 191 MB for rtvpnet-n) every N epochs; the
            final epoch is always saved (0: only then). An interrupted run resumes from the last save.
        log_period: TensorBoard scalar logging period in steps.
        tensorboard: write TensorBoard event files under ``<run>/tensorboard`` when tensorboard is installed.
        plots: write ``results.png`` (loss and metric curves) at the end.
        name: run name; the run folder is ``runs/<name>`` unless ``out`` is given.
        out: run folder.
        exist_ok: allow starting a new run in a folder that already holds one (overwrites it).
        expert_update: train the expert in stage 2 (Eq.6) at the coupling learning rate; false freezes it.
        coupling_ratio: the stage-2 expert's learning rate is ``coupling_ratio * lr`` (eta_c).
        dp_eps: stage 2 stops optimising L_dp once its running mean falls below this (RTVPNet with EDP); in units
            of mean squared expert feature.
        close_mosaic: train the last N epochs of each stage without mosaic (Ultralytics' ``close_mosaic``, also 10
            there), never more than the second half of a stage (a 6-epoch stage 2 keeps mosaic for 3); 0 keeps mosaic
            throughout. An explicit ``augment.mosaic_stop_epoch`` wins over it. Measured (benchmarks/results/
            close_mosaic, demo): NEU-DET +3.2 AP, DeepPCB -1.4 AP (within seed noise), ``rtvp demo`` closed AP50
            0.493 vs 0.494 over 3 seeds in 11 % less time.
        augment: augmentations of the training dataset (``--set augment.mosaic=0``).
        loss: loss gains and label assignment (``--set loss.seg=2.5``).
        model: the model config (``--set model.edp=false``).
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {f"model.{k}": k for k in TRAINING_KEYS}
    """Training settings older versions kept under ``model`` (their config.yaml files and checkpoints still load)."""

    data: Path | None = None
    protocol: Literal["closed", "open"] = "closed"
    arch: Literal["rtvpnet", "expert"] = "rtvpnet"
    stage: Literal["expert", "full", "both"] = "both"
    expert_epochs: int = 10
    expert_weights: Path | None = None
    expert_head_init: bool = True
    epochs: int = 100
    batch: int = 16
    imgsz: int = 640
    lr: float = 2e-3
    lr_final: float = 0.01
    weight_decay: float = 0.025
    warmup_epochs: float = 3.0
    warmup_iters: int = 0
    ema: bool = True
    ema_decay: float = 0.9999
    ema_tau: float = 2000.0
    grad_clip: float = 10.0
    amp: bool | None = None
    channels_last: bool | None = None
    workers: int | None = None
    seed: int = 0
    device: str = "auto"
    vocab: Literal["auto", "all", "sampled"] = "auto"
    vocab_size: int = 0
    class_text: Literal["name", "ensemble"] = "name"
    val_period: int = 1
    best_metric: str = "AP"
    patience: int = 50
    save_period: int = 0
    save_iters: int = 0
    last_period: int = 1
    log_period: int = 10
    tensorboard: bool = True
    plots: bool = True
    name: str = "exp"
    out: Path | None = None
    exist_ok: bool = False
    expert_update: bool = True
    coupling_ratio: float = 0.1
    dp_eps: float = 0.02
    close_mosaic: int = 10
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch": self.batch, "imgsz": self.imgsz, "log_period": self.log_period}
        bad = [f"{k}={v}" for k, v in positive.items() if v < 1]
        nonneg = {"expert_epochs": self.expert_epochs, "warmup_epochs": self.warmup_epochs, "lr": self.lr,
                  "warmup_iters": self.warmup_iters, "weight_decay": self.weight_decay, "grad_clip": self.grad_clip,
                  "workers": self.workers or 0, "val_period": self.val_period, "patience": self.patience,
                  "save_period": self.save_period, "save_iters": self.save_iters,
                  "last_period": self.last_period, "vocab_size": self.vocab_size,
                  "close_mosaic": self.close_mosaic}
        bad += [f"{k}={v}" for k, v in nonneg.items() if v < 0]
        if bad:
            raise ConfigError(f"TrainConfig: {', '.join(bad)} out of range (counts and sizes must be positive, "
                              "rates and periods non-negative)")
        if self.imgsz % 32:
            raise ConfigError(f"TrainConfig: imgsz={self.imgsz} must be a multiple of 32 (the largest stride)")
        if self.coupling_ratio <= 0 or self.dp_eps < 0:
            raise ConfigError(f"TrainConfig: coupling_ratio={self.coupling_ratio} must be > 0 and dp_eps={self.dp_eps}"
                              " >= 0")
        if not 0.0 <= self.lr_final <= 1.0 or not 0.0 <= self.ema_decay < 1.0 or self.ema_tau <= 0:
            raise ConfigError(f"TrainConfig: lr_final={self.lr_final} must be in [0, 1], ema_decay={self.ema_decay} "
                              f"in [0, 1) and ema_tau={self.ema_tau} > 0")
        if self.arch == "expert" and self.protocol != "closed":
            raise ConfigError(f"TrainConfig: expert-{self.model.scale} is a closed-set detector; use --protocol closed"
                              " or an rtvpnet-* model for the open protocol")

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages this run trains, in order: ("expert",), ("full",) or ("expert", "full")."""
        if self.arch == "expert" or self.stage == "expert":
            return ("expert",)
        return ("full",) if self.stage == "full" else ("expert", "full")

    def stage_epochs(self, stage: str) -> int:
        """Epochs ``stage`` ("expert" or "full") trains: ``expert_epochs`` for stage 1 of a two-stage run."""
        return self.expert_epochs if stage == "expert" and len(self.stages) == 2 else self.epochs

    def mosaic_stop(self, stage: str) -> int | None:
        """The epoch of ``stage`` from which mosaic is off (``None``: mosaic throughout).

        ``augment.mosaic_stop_epoch`` when set, else ``close_mosaic`` epochs before the stage's end, at most half-way.
        """
        if self.augment.mosaic_stop_epoch is not None or not self.close_mosaic:
            return self.augment.mosaic_stop_epoch
        epochs = self.stage_epochs(stage)
        return max(epochs - self.close_mosaic, epochs // 2)

    @property
    def model_name(self) -> str:
        """``<arch>-<scale>``, e.g. ``rtvpnet-n``."""
        return f"{self.arch}-{self.model.scale}"

    def with_model_name(self, name: str) -> TrainConfig:
        """Copy with ``arch`` and ``model.scale`` taken from a ``--model`` name such as ``expert-s``."""
        arch, scale = parse_model_name(name)
        return replace(self, arch=arch, model=replace(self.model, scale=scale))

    @property
    def run_dir(self) -> Path:
        """The run folder: ``out`` or ``runs/<name>``."""
        return Path(self.out) if self.out is not None else Path("runs") / self.name
