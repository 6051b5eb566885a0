"""Evaluation during training, composed outside the trainer (imported by the CLI and ``rtvp demo``, never it).

``make_eval_factory(cfg)`` returns the ``make_eval(stage, meta)`` that :func:`rtvp.training.stages.train` calls.

Each ``eval_fn(model)`` delegates to :func:`rtvp.evaluation.inference.make_eval_fn`, so evaluation during training
runs exactly the path of ``rtvp val`` (predictor preprocessing, NMS, un-letterboxing, COCO evaluation).
Vocabulary per protocol: closed -> every class; open -> the unseen classes; the closed-set expert maps the
prompts onto its own classes and is evaluated only under the closed protocol. The last evaluation's full metrics
go to ``<stage run>/metrics.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from rtvp.device import resolve_device, resolve_workers
from rtvp.evaluation.inference import make_eval_fn
from rtvp.fileio import atomic_write_text
from rtvp.training.config import TrainConfig
from rtvp.training.stages import EvalFactory, stage_dirs
from rtvp.training.trainer import EvalFn


def make_eval_factory(cfg: TrainConfig, batch: int | None = None, workers: int | None = None) -> EvalFactory:
    """``make_eval(stage, meta)`` for :func:`rtvp.training.stages.train`.

    Args:
        cfg: the run config (benchmark, protocol, imgsz).
        batch: eval batch size (default ``cfg.batch``).
        workers: eval loader workers (default ``cfg.workers``; ``None`` there: ``rtvp.device.default_workers``).
    """
    if cfg.data is None:
        return lambda stage, meta: None
    dirs = stage_dirs(cfg)

    def make_eval(stage: str, meta: dict[str, Any]) -> EvalFn | None:
        if stage == "expert" and cfg.protocol != "closed":
            return None  # the seen-class expert cannot be scored on unseen classes
        run = make_eval_fn(Path(cfg.data), cfg.protocol, imgsz=cfg.imgsz, batch=batch or cfg.batch,
                           text_embeddings=meta.get("text_embeddings"),
                           text_encoder_name=cfg.model.text_encoder,
                           workers=resolve_workers(cfg.workers, resolve_device(cfg.device)) if workers is None
                           else workers)
        vocabulary = list(meta["vocabulary"])

        def eval_fn(model: nn.Module) -> dict[str, Any]:
            metrics = run(model, vocabulary)
            atomic_write_text(dirs[stage] / "metrics.json", json.dumps(metrics, indent=1))
            return metrics

        return eval_fn

    return make_eval
