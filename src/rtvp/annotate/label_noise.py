"""Label-noise robustness (paper 001 §3.1.3): flip x% of the training labels, retrain, report ΔAP50 vs clean.

:func:`inject_label_noise` flips exactly ``round(x / 100 * N)`` of the N eligible annotations (chosen by a seeded
permutation) to a uniformly drawn *other* class; boxes are untouched. :func:`noise_robustness` trains one model per
noise level with the same :class:`~rtvp.training.config.TrainConfig` (same budget, same training seed; only the labels
differ), evaluates it on the protocol's validation split and reports AP50 and its change from the clean run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.bench.version import read_coco, scratch_bench
from rtvp.errors import ConfigError
from rtvp.fileio import atomic_write_text

LOGGER = logging.getLogger("rtvp.annotate")


def inject_label_noise(coco: dict[str, Any], percent: float, seed: int = 0,
                       category_ids: Sequence[int] | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """Copy of ``coco`` with ``percent``% of the eligible annotations relabelled to another class.

    Args:
        coco: COCO dict (not modified).
        percent: share of annotations to flip, in percent (0..100).
        seed: seed of the choice of annotations and of their new classes.
        category_ids: classes that take part (annotations of other classes are neither flipped nor used as
            targets); default: every category of ``coco``.

    Returns:
        ``(noisy coco, indices into coco["annotations"] of the flipped annotations (sorted))``.

    Raises:
        ConfigError: ``percent`` outside [0, 100], or noise asked with fewer than 2 classes.
    """
    if not 0.0 <= percent <= 100.0:
        raise ConfigError(f"label noise {percent}% must be between 0 and 100")
    classes = np.array(sorted(category_ids if category_ids is not None else [c["id"] for c in coco["categories"]]))
    cats = np.array([a["category_id"] for a in coco["annotations"]], dtype=np.int64)
    eligible = np.flatnonzero(np.isin(cats, classes))
    n = int(round(percent / 100.0 * len(eligible)))
    noisy = {**coco, "annotations": list(coco["annotations"])}
    if n == 0:
        return noisy, np.zeros(0, dtype=np.int64)
    if len(classes) < 2:
        raise ConfigError(f"label noise needs at least 2 classes to flip between, got {classes.tolist()}")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, size=n, replace=False))
    pos = np.searchsorted(classes, cats[chosen])
    new = classes[(pos + rng.integers(1, len(classes), size=n)) % len(classes)]  # uniform over the other classes
    for i, c in zip(chosen.tolist(), new.tolist(), strict=True):
        noisy["annotations"][i] = {**copy.deepcopy(coco["annotations"][i]), "category_id": int(c)}
    return noisy, chosen


def _train_level(bench: Path, split: str, coco: dict[str, Any], percent: float, cfg: Any, folder: Path,
                 seed: int) -> dict[str, Any]:
    from rtvp.evaluation.validation import make_eval_factory
    from rtvp.training.stages import train

    allowed = [c["id"] for c in coco["categories"] if cfg.protocol == "closed" or c.get("split") == "seen"]
    noisy, flipped = inject_label_noise(coco, percent, seed, allowed)
    data = scratch_bench(bench, folder / "bench", {split: noisy})
    run = dataclasses.replace(cfg, data=data, out=folder / "run", exist_ok=True, patience=0,
                              val_period=max(cfg.epochs, cfg.expert_epochs))
    result = train(run, make_eval=make_eval_factory(run))
    metrics = result[list(result)[-1]]["metrics"] or {}
    return {"percent": float(percent), "flipped": int(len(flipped)), "annotations": len(coco["annotations"]),
            "AP50": metrics.get("AP50"), "AP": metrics.get("AP"), "run_dir": str(folder / "run")}


def noise_robustness(bench: str | Path, levels: Sequence[float], cfg: Any, work: str | Path, seed: int = 0,
                     resume: bool = False) -> dict[str, Any]:
    """Retrain at each label-noise level with a fixed budget and report AP50 and ΔAP50 against the clean run.

    Args:
        bench: benchmark folder (its ``<protocol>_train`` labels get the noise; validation stays clean).
        levels: noise levels in percent; 0 (the clean baseline) is always added.
        cfg: the :class:`~rtvp.training.config.TrainConfig` every level trains with (``data``/``out`` are set here).
        work: folder for the noisy benchmarks and the runs (``noise_<level>/``).
        seed: noise seed (the training seed is ``cfg.seed``, the same for every level).
        resume: reuse the results of levels already finished in ``work``.

    Returns:
        ``{"clean_AP50", "levels": [{"percent", "flipped", "annotations", "AP50", "AP", "delta_AP50", "run_dir"}],
        "model", "epochs", "imgsz", "seed"}``.
    """
    bench, work = Path(bench), Path(work)
    split = f"{cfg.protocol}_train"
    coco = read_coco(bench / "annotations" / f"{split}.json")
    rows = []
    for percent in sorted({0.0, *(float(p) for p in levels)}):
        folder = work / f"noise_{percent:g}"
        done = folder / "result.json"
        if resume and done.is_file():
            row = json.loads(done.read_text(encoding="utf-8"))
        else:
            LOGGER.info("label noise %g%%: training %s for %d epochs", percent, cfg.model_name, cfg.epochs)
            row = _train_level(bench, split, coco, percent, cfg, folder, seed)
            atomic_write_text(done, json.dumps(row, indent=1))
        rows.append(row)
    clean = rows[0]["AP50"]
    for row in rows:
        row["delta_AP50"] = None if clean is None or row["AP50"] is None else row["AP50"] - clean
    return {"clean_AP50": clean, "levels": rows, "model": cfg.model_name, "epochs": cfg.epochs, "imgsz": cfg.imgsz,
            "seed": seed}
