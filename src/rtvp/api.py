"""The Python API in three calls, composed as ``rtvp train`` and ``rtvp val`` compose them.

>>> import rtvp
>>> cfg = rtvp.TrainConfig(data="mmioc-mini", protocol="open", epochs=20, imgsz=320)  # doctest: +SKIP
>>> runs = rtvp.train(cfg)  # doctest: +SKIP
>>> metrics = rtvp.val(runs["full"]["best"], "mmioc-mini", protocol="generalized")  # doctest: +SKIP
>>> rtvp.Predictor(runs["full"]["best"]).predict(["board.png"], prompts=["spur", "open circuit"])  # doctest: +SKIP

This module is a composition root like the CLI: it wires evaluation into training as a hook (the trainer never
imports the evaluator) and runs a checkpoint over a split before scoring it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtvp.evaluation.evaluator import evaluate, protocol_files
from rtvp.evaluation.inference import checkpoint_masks, predict_split
from rtvp.evaluation.validation import make_eval_factory
from rtvp.training.config import TrainConfig
from rtvp.training.stages import train as train_stages


def train(cfg: TrainConfig, *, resume: bool = False, validate: bool = True) -> dict[str, dict[str, Any]]:
    """Train as ``rtvp train`` does: stage 1 (expert) and/or stage 2 (RTVPNet) per ``cfg.stages``.

    Args:
        cfg: the training config (``cfg.data`` a benchmark folder built with ``rtvp data build``).
        resume: continue an interrupted run from its stages' ``weights/last.pt``.
        validate: evaluate on the protocol's val split every ``cfg.val_period`` epochs (selects ``best.pt``).

    Returns:
        Per trained stage (``"expert"``, ``"full"``): ``{"run_dir": folder, "best": best.pt path, "metrics": the
        last evaluation}``.
    """
    return train_stages(cfg, resume=resume, make_eval=make_eval_factory(cfg) if validate else None)


def val(weights: str | Path, data: str | Path, protocol: str = "closed", *, imgsz: int | None = None,
        batch: int = 8, device: str = "auto", workers: int = 0, backend: str = "pycocotools",
        class_text: str = "stored") -> dict[str, Any]:
    """Score a checkpoint on a benchmark's val split as ``rtvp val --weights`` does.

    Args:
        weights: checkpoint path (``best.pt`` / ``last.pt``).
        data: benchmark folder.
        protocol: ``closed``, ``open`` (unseen classes only) or ``generalized`` (adds AP_seen, AP_unseen, HM).
        imgsz: inference size (default: the checkpoint's).
        batch: images per forward pass.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        workers: data-loading processes.
        backend: COCO evaluation implementation (``pycocotools`` or ``faster``).
        class_text: RTVPNet class embeddings: ``stored`` (the checkpoint's) or ``ensemble`` (mean of each class's
            phrasings, :func:`rtvp.vocabulary.class_text_variants`).

    Returns:
        :func:`rtvp.evaluation.evaluator.evaluate`'s dict (``AP``, ``AP50``, ... fractions, per-class breakdowns).
    """
    val_json, train_json = protocol_files(Path(data), protocol)
    results = predict_split(weights, Path(data), val_json.stem, protocol, imgsz=imgsz, batch=batch, device=device,
                            workers=workers, class_text=class_text)
    return evaluate(val_json, results, protocol, train_gt=train_json if train_json.is_file() else None,
                    backend=backend, masks=checkpoint_masks(weights, results))
