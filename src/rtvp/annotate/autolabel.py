"""Adversarial auto-annotation (paper 001 §3.1.2, ``rtvp data autolabel``).

Given a benchmark whose closed_train images are only partly labelled (by default: a seeded, per-scene stratified
``labeled_fraction`` of them counts as expert-labelled and the rest as unlabelled):

1. train two different detectors on the labelled part through the trainer (or take given checkpoints): the
   closed-set ``ExpertDetector`` and the open-vocabulary ``RTVPNet`` (by default its stage 2 starts from that
   expert, the usual two-stage recipe; ``ov_from_expert=False`` trains it independently, stage 1 included);
2. predict the unlabelled images through the :class:`~rtvp.predict.predictor.Predictor` (RTVPNet prompted with the
   benchmark's class texts), caching every image's boxes in chunked JSONL files under ``<out>/work/predictions``
   so that a rerun (``resume``) skips the images already done;
3. keep the boxes both agree on (:func:`rtvp.annotate.agreement.agree`: same class, IoU >= ``iou``, fused
   coordinates) and queue the disagreements for expert review (``review/queue.json``, see :mod:`rtvp.annotate.review`);
4. write a new benchmark version to ``out``: closed_train = the expert labels of the labelled images + the agreed
   labels of the others, each annotation with ``provenance: {source: "expert" | "auto", score_ov, score_expert}``
   and each image with ``annotation_source``; open_train is rebuilt from it; the val splits are unchanged.

Everything is deterministic for a seed. ``<out>/work`` keeps the parameters, the training runs and the caches.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.annotate.agreement import REASONS, Agreement, ImageLabels, agree
from rtvp.annotate.cache import PredictionCache, predict_missing
from rtvp.bench.version import derive_open_train, read_splits, scratch_bench, write_version
from rtvp.bench.writer import coco_annotation
from rtvp.config import to_dict
from rtvp.errors import ConfigError
from rtvp.fileio import atomic_write_text

LOGGER = logging.getLogger("rtvp.annotate")


@dataclass(frozen=True)
class AutolabelConfig:
    """Settings of one auto-annotation run (training settings live in the ``TrainConfig`` passed beside it).

    Attributes:
        labeled_fraction: share of closed_train images treated as expert-labelled (per scene, seeded).
        labeled_ids: explicit labelled image ids (overrides ``labeled_fraction``).
        iou: agreement IoU threshold.
        min_iou: pairs at or below this IoU are different objects.
        conf: score threshold of both detectors.
        seed: seed of the labelled subset and of the training runs.
        weights_ov: an RTVPNet checkpoint to use instead of training one.
        weights_expert: an ExpertDetector checkpoint to use instead of training one.
        ov_from_expert: start RTVPNet's stage 2 from the trained expert (False: train RTVPNet fully on its own).
        device: inference device ("auto": CUDA when available).
        imgsz: inference size (``None``: each checkpoint's training size).
        batch: images per inference batch.
        chunk: images per JSONL cache file.
    """

    labeled_fraction: float = 0.15
    labeled_ids: tuple[int, ...] | None = None
    iou: float = 0.5
    min_iou: float = 0.1
    conf: float = 0.25
    seed: int = 0
    weights_ov: Path | None = None
    weights_expert: Path | None = None
    ov_from_expert: bool = True
    device: str = "auto"
    imgsz: int | None = None
    batch: int = 8
    chunk: int = 512

    def __post_init__(self) -> None:
        if not 0.0 <= self.labeled_fraction <= 1.0:
            raise ConfigError(f"labeled_fraction={self.labeled_fraction} must be in [0, 1]")
        if not 0.0 <= self.min_iou < self.iou <= 1.0:
            raise ConfigError(f"need 0 <= min_iou < iou <= 1, got min_iou={self.min_iou}, iou={self.iou}")
        if not 0.0 <= self.conf < 1.0 or self.batch < 1 or self.chunk < 1:
            raise ConfigError(f"need 0 <= conf < 1, batch >= 1, chunk >= 1; got conf={self.conf}, "
                              f"batch={self.batch}, chunk={self.chunk}")


def select_labeled(images: list[dict[str, Any]], fraction: float, seed: int) -> list[int]:
    """Seeded per-scene sample of ``round(fraction * n_scene)`` image ids (at least one per scene when > 0)."""
    rng = np.random.default_rng(seed)
    by_scene: dict[str, list[int]] = {}
    for im in images:
        by_scene.setdefault(str(im.get("scene") or ""), []).append(int(im["id"]))
    chosen: list[int] = []
    for scene in sorted(by_scene):
        ids = np.array(sorted(by_scene[scene]))
        k = 0 if fraction <= 0 else min(len(ids), max(1, int(round(fraction * len(ids)))))
        chosen += rng.choice(ids, size=k, replace=False).tolist()
    return sorted(chosen)


def _params(bench: Path, cfg: AutolabelConfig, labeled_ids: set[int], train_cfg: Any) -> dict[str, Any]:
    """The settings a resumed run must share (device, batch sizes, chunking and loader workers may change)."""
    params = {"bench": str(bench.resolve()), **to_dict(cfg), "labeled": sorted(labeled_ids),
              "train": to_dict(train_cfg) if train_cfg is not None else None}
    for key in ("device", "batch", "chunk"):
        params.pop(key)
    for key in ("device", "workers"):
        (params["train"] or {}).pop(key, None)
    return params


def _check_params(work: Path, params: dict[str, Any], resume: bool, out: Path) -> None:
    path = work / "params.json"
    if path.is_file():
        if not resume:
            raise ConfigError(f"{out} already holds an auto-annotation run; pass --resume to continue it or choose "
                              "another --out")
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = sorted(k for k in set(old) | set(params) if old.get(k) != params.get(k))
        if diff:
            raise ConfigError(f"--resume: {out} was started with other settings ({', '.join(diff)}); rerun with the "
                              "same settings or choose another --out")
    elif out.is_dir() and any(p.name != "work" for p in out.iterdir()):
        raise ConfigError(f"{out} exists and is not an auto-annotation output; choose an empty or new --out")
    atomic_write_text(path, json.dumps(params, indent=1, sort_keys=True))


def _train(train_cfg: Any, folder: Path, resume: bool, **changes: Any) -> Path:
    """Train one detector into ``folder`` (resuming an interrupted run); returns its ``best.pt``."""
    from rtvp.training.stages import train

    best, marker = folder / "weights" / "best.pt", folder / "done.json"
    if marker.is_file() and best.is_file():
        return best
    cfg = dataclasses.replace(train_cfg, out=folder, exist_ok=True, val_period=0, **changes)
    LOGGER.info("training %s on the labelled images -> %s", cfg.model_name, folder)
    train(cfg, resume=resume and (folder / "weights" / "last.pt").is_file())
    atomic_write_text(marker, json.dumps({"best": str(best)}))
    return best


def train_detectors(bench: Path, labeled: dict[str, Any], open_train: dict[str, Any], cfg: AutolabelConfig,
                    train_cfg: Any, work: Path, resume: bool) -> tuple[Path, Path]:
    """The two checkpoints: given ones, or trained on the labelled images (``work/expert``, ``work/ov``)."""
    need = cfg.weights_ov is None or cfg.weights_expert is None
    if need and train_cfg is None:
        raise ConfigError("no training settings given and no --weights-ov/--weights-expert to use")
    if need and not labeled["images"]:
        raise ConfigError("no labelled image to train on: raise --labeled-fraction or pass both checkpoints")
    data = scratch_bench(bench, work / "labeled", {"closed_train": labeled, "open_train": open_train}) if need else None
    common = {"data": data, "protocol": "closed", "seed": cfg.seed}
    expert = cfg.weights_expert
    if expert is None:
        expert = _train(train_cfg, work / "expert", resume, arch="expert", stage="expert", **common)
    ov = cfg.weights_ov
    if ov is None and cfg.ov_from_expert:  # stage 2 starts from the (given or trained) expert
        ov = _train(train_cfg, work / "ov", resume, arch="rtvpnet", stage="full", expert_weights=Path(expert),
                    **common)
    elif ov is None:
        ov = _train(train_cfg, work / "ov", resume, arch="rtvpnet", stage="both", **common)
    return Path(ov), Path(expert)


def _clip_xyxy(box: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.clip(box, 0, [w, h, w, h])


def _xywh(box: list[float] | np.ndarray, w: int, h: int) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in _clip_xyxy(np.asarray(box, float), w, h))
    return [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]


def _auto_annotations(a: Agreement, image: dict[str, Any], next_id: int) -> list[dict[str, Any]]:
    w, h = int(image["width"]), int(image["height"])
    out = []
    for k in range(len(a.boxes)):
        box = _clip_xyxy(a.boxes[k], w, h)
        if min(box[2] - box[0], box[3] - box[1]) < 1.0:
            continue
        ann = coco_annotation(next_id + len(out), image["id"], int(a.cats[k]), box.tolist(), [], w, h)
        ann["provenance"] = {"source": "auto", "score": round(float(a.scores[k]), 5),
                             "score_ov": round(float(a.score_ov[k]), 5),
                             "score_expert": round(float(a.score_expert[k]), 5), "iou": round(float(a.iou[k]), 4)}
        out.append(ann)
    return out


def _queue_items(a: Agreement, image: dict[str, Any]) -> list[dict[str, Any]]:
    w, h = int(image["width"]), int(image["height"])
    items = []
    for k, d in enumerate(a.disagreements):
        cands = [{**c, "bbox": _xywh(c["bbox"], w, h)} for c in d["candidates"]]
        items.append({"id": f"{image['id']}-{k}", "image_id": image["id"], "file_name": image["file_name"],
                      "width": w, "height": h, "scene": image.get("scene", ""), "reason": d["reason"],
                      "iou": d["iou"], "candidates": cands, "status": "pending"})
    return items


def build_version(splits: dict[str, dict], labeled_ids: set[int], preds: dict[str, dict[int, Any]],
                  cfg: AutolabelConfig) -> tuple[dict[str, dict], list[dict], dict[str, Any]]:
    """The new splits, the review queue items and the counts, from the cached predictions of both models."""
    train = splits["closed_train"]
    next_id = 1 + max((a["id"] for s in splits.values() for a in s["annotations"]), default=0)
    by_image: dict[int, list[dict]] = {}
    for a in train["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    images, anns, queue, unreadable = [], [], [], []
    counts: Counter[str] = Counter()
    for im in sorted(train["images"], key=lambda i: i["id"]):
        iid = im["id"]
        if iid in labeled_ids:
            images.append({**im, "annotation_source": "expert"})
            for a in by_image.get(iid, []):
                anns.append({**a, "provenance": {"source": "expert", "score_ov": None, "score_expert": None}})
            continue
        ov, ex = preds["ov"].get(iid), preds["expert"].get(iid)
        if ov is None or ex is None:
            unreadable.append(im["file_name"])
            continue
        result = agree(ov, ex, cfg.iou, cfg.min_iou)
        new = _auto_annotations(result, im, next_id)
        next_id += len(new)
        images.append({**im, "annotation_source": "auto"})
        anns += new
        queue += _queue_items(result, im)
        counts["auto"] += len(new)
        counts["redundant"] += result.redundant
    counts.update(item["reason"] for item in queue)
    new_train = {**train, "images": images, "annotations": anns}
    out = {**splits, "closed_train": new_train, "open_train": derive_open_train(splits["open_train"], new_train)}
    stats = {"labeled_images": len(labeled_ids), "auto_images": len(images) - len(labeled_ids),
             "unreadable": unreadable, "expert_labels": sum(1 for a in anns if a["provenance"]["source"] == "expert"),
             "auto_labels": counts["auto"], "redundant": counts["redundant"],
             "queue": {r: counts[r] for r in REASONS}}
    return out, queue, stats


def _labeled(train: dict[str, Any], cfg: AutolabelConfig) -> set[int]:
    ids = {im["id"] for im in train["images"]}
    if cfg.labeled_ids is not None:
        unknown = sorted(set(cfg.labeled_ids) - ids)
        if unknown:
            raise ConfigError(f"labelled ids {unknown[:5]} are not closed_train images of the benchmark")
        return set(cfg.labeled_ids)
    return set(select_labeled(train["images"], cfg.labeled_fraction, cfg.seed))


def autolabel(bench: str | Path, out: str | Path, cfg: AutolabelConfig, train_cfg: Any = None,
              resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run the whole auto-annotation (module docstring) and return its summary.

    Args:
        bench: source benchmark (never modified).
        out: new benchmark folder (its ``work/`` holds parameters, runs and prediction caches).
        cfg: auto-annotation settings.
        train_cfg: ``TrainConfig`` for the two trainings (epochs, imgsz, model scale, ...); not needed when both
            checkpoints are given.
        resume: continue an interrupted run in ``out`` (same settings required).
        progress: show progress bars.

    Examples:
        >>> cfg = AutolabelConfig(labeled_fraction=0.15)  # doctest: +SKIP
        >>> autolabel("bench", "bench-auto", cfg, TrainConfig(epochs=5))  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    bench, out = Path(bench), Path(out)
    work = out / "work"
    splits = read_splits(bench)
    train = splits["closed_train"]
    labeled_ids = _labeled(train, cfg)
    _check_params(work, _params(bench, cfg, labeled_ids, train_cfg), resume, out)
    labeled = {**train, "images": [im for im in train["images"] if im["id"] in labeled_ids],
               "annotations": [a for a in train["annotations"] if a["image_id"] in labeled_ids]}
    ov_w, ex_w = train_detectors(bench, labeled, derive_open_train(splits["open_train"], labeled), cfg, train_cfg,
                                 work, resume)
    t1 = time.perf_counter()
    todo = [im for im in sorted(train["images"], key=lambda i: i["id"]) if im["id"] not in labeled_ids]
    preds, predicted = {}, {}
    for model, weights in (("ov", ov_w), ("expert", ex_w)):
        cache = PredictionCache(work / "predictions" / model, cfg.chunk)
        predicted[model] = predict_missing(cache, weights, model, bench, todo, train["categories"], cfg, progress)
        preds[model] = cache.load()
    t2 = time.perf_counter()
    new_splits, queue, stats = build_version(splits, labeled_ids, preds, cfg)
    cats = [{"id": c["id"], "name": c["name"], "text": c.get("text", c["name"])} for c in train["categories"]]
    queue_doc = {"format": "rtvp-review-queue", "version": 1, "categories": cats, "items": queue}
    summary = {"tool": "autolabel", "from": str(bench.resolve()), "weights_ov": str(ov_w.resolve()),
               "weights_expert": str(ex_w.resolve()), "iou": cfg.iou, "min_iou": cfg.min_iou, "conf": cfg.conf,
               "seed": cfg.seed, **{k: v for k, v in stats.items() if k != "unreadable"},
               "unreadable": len(stats["unreadable"])}
    write_version(bench, out, new_splits, "auto", summary, {
        "review/queue.json": json.dumps(queue_doc, indent=1, ensure_ascii=False) + "\n",
        "review/autolabel.json": json.dumps({**summary, "unreadable_files": stats["unreadable"]}, indent=1) + "\n"})
    summary["predicted_now"] = predicted
    summary["seconds"] = {"train": round(t1 - t0, 1), "predict": round(t2 - t1, 1),
                          "total": round(time.perf_counter() - t0, 1)}
    return summary


__all__ = ["AutolabelConfig", "ImageLabels", "autolabel", "build_version", "select_labeled", "train_detectors"]
