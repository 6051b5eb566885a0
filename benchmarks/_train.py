"""Benchmarks, training runs and evaluation shared by the scripts (public rtvp APIs only).

- benchmarks: ``quick_bench`` (``rtvp data synth`` + ``rtvp data build configs/benchmarks/synth.yaml``),
  ``recipe_bench`` (``rtvp data build RECIPE``), ``subset_bench`` (seeded share of the training images);
- training: ``make_config`` (a ``TrainConfig`` from a :class:`Budget` + switches) and ``train_run`` (one call of
  ``rtvp.training.stages.train``; runs are content-addressed under ``<runs>/train/`` so every script that asks for the
  same config reuses the checkpoint, and an interrupted run resumes from ``last.pt``);
- evaluation: ``evaluate_weights`` (``predict_split`` + ``evaluate``) and ``evaluate_expert_generalized``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, config_hash

METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
GEN_KEYS = ("AP_seen", "AP_unseen", "HM", "AP50_seen", "AP50_unseen", "HM50")
MASK_KEYS = ("mask_AP", "mask_AP50", "mask_AP75", "mask_images", "mask_classes")
SYNTH_RECIPE = REPO / "configs" / "benchmarks" / "synth.yaml"
MMIOC_RECIPE = REPO / "configs" / "benchmarks" / "mmioc-mini.yaml"
TEXT_ONLY = {"sam": False, "edp": False, "rvp": False, "t2v": False, "v2t": False}
"""Model switches of the text-only variant: a YOLO-World-like detector on the same expert (no SAM, no prompts)."""
VARIANTS: dict[str, dict[str, Any]] = {
    "rtvpnet": {},
    "textonly": TEXT_ONLY,
    "expert_text": {**TEXT_ONLY, "expert_update": False},
    "rtvpnet_obj": {"objectness": True},  # lever (issue 15): class-agnostic objectness shared by every prompt
    "textonly_obj": {**TEXT_ONLY, "objectness": True},
    "rtvpnet_ftp": {"text_proj_freeze": True},  # lever (issue 15): a fixed, geometry-keeping text projection
    "textonly_ftp": {**TEXT_ONLY, "text_proj_freeze": True},
    "rtvpnet_ens": {},  # lever (issue 15): each class text is the mean of its phrasings (VARIANT_TRAIN)
    "textonly_ens": TEXT_ONLY,
}
VARIANT_TRAIN: dict[str, dict[str, Any]] = {"rtvpnet_ens": {"class_text": "ensemble"},
                                            "textonly_ens": {"class_text": "ensemble"}}
"""Training settings of the variants that are not model switches."""


@dataclass(frozen=True)
class Budget:
    """What one training run may spend.

    Attributes:
        scale: model scale (``tiny``, ``n``, ``s``, ``l``).
        imgsz: training and evaluation size.
        batch: global batch size.
        epochs: epochs of stage 2 (the full model).
        expert_epochs: epochs of stage 1 (expert pre-training).
        workers: data-loading processes.
        sam_weights: official ``mobile_sam.pt`` (frozen SAM) or ``None`` (random SAM trained from scratch).
    """

    scale: str = "n"
    imgsz: int = 320
    batch: int = 16
    epochs: int = 10
    expert_epochs: int = 10
    workers: int = 2
    sam_weights: str | None = None


QUICK = Budget(scale="tiny", imgsz=96, batch=8, epochs=1, expert_epochs=1, workers=0)
"""The ``--quick`` budget (smoke run: the numbers are meaningless, the code paths are the real ones)."""


def add_budget_args(parser: Any, default: Budget) -> None:
    """``--scale --imgsz --batch --epochs --expert-epochs --workers --sam-weights`` with the script's defaults."""
    parser.add_argument("--scale", default=default.scale, help="model scale: tiny | n | s | l")
    parser.add_argument("--imgsz", type=int, default=default.imgsz, help="train/eval image size (multiple of 32)")
    parser.add_argument("--batch", type=int, default=default.batch, help="global batch size")
    parser.add_argument("--epochs", type=int, default=default.epochs, help="stage-2 (full model) epochs")
    parser.add_argument("--expert-epochs", type=int, default=default.expert_epochs, help="stage-1 epochs")
    parser.add_argument("--workers", type=int, default=default.workers, help="dataloader workers")
    parser.add_argument("--sam-weights", default=default.sam_weights,
                        help="official mobile_sam.pt (frozen SAM); default: random SAM trained from scratch")


def budget_from_args(args: Any) -> Budget:
    """The :class:`Budget` of the parsed arguments (``--quick`` replaces it by :data:`QUICK`)."""
    if args.quick:
        return QUICK
    return Budget(args.scale, args.imgsz, args.batch, args.epochs, args.expert_epochs, args.workers, args.sam_weights)


def setup_logging() -> None:
    """Show the trainer's per-epoch summaries (indented under the cell headers) and the no-SAM warning once."""
    from rtvp.training.loggers import console_logging

    console_logging(indent="  ")
    warnings.filterwarnings("once", message="no sam_weights given")


# -------------------------------------------------------------------------------------------------------- benchmarks
def rtvp_cli(*args: str) -> None:
    """Run ``rtvp <args>`` with this interpreter (the same environment); raises with its output on failure."""
    cmd = [sys.executable, "-m", "rtvp.cli.main", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def quick_bench(runs_root: Path, images: int = 48, size: int = 128) -> Path:
    """The tiny synthetic benchmark of ``--quick`` (built once per runs folder)."""
    root = Path(runs_root) / "_quick"
    data, bench = root / "synth-data", root / "synth-bench"
    if not (bench / "benchmark.yaml").is_file():
        if not (data / "metal" / "annotations.json").is_file():
            rtvp_cli("data", "synth", "--out", str(data), "--images", str(images), "--size", str(size), "--seed", "0",
                     "--overwrite")
        rtvp_cli("data", "build", str(SYNTH_RECIPE), "--root", str(data), "--out", str(bench), "--quiet")
    return bench


def recipe_bench(recipe: Path, root: Path, runs_root: Path, name: str | None = None, workers: int = 2) -> Path:
    """``rtvp data build RECIPE --root ROOT`` into ``<runs>/_bench/<name>`` (skipped when already built).

    A cached benchmark is kept even when the recipe changed since (a rebuild would orphan every cached training run
    on it); a warning then says so and how to rebuild.
    """
    import yaml

    from rtvp.bench.recipe import load_recipe

    bench = Path(runs_root) / "_bench" / (name or Path(recipe).stem)
    meta = bench / "benchmark.yaml"
    if not meta.is_file():
        rtvp_cli("data", "build", str(recipe), "--root", str(root), "--out", str(bench), "--workers", str(workers),
                 "--quiet")
    elif (built := yaml.safe_load(meta.read_text(encoding="utf-8")).get("recipe_sha1")) != load_recipe(recipe).sha1():
        warnings.warn(f"{bench} was built from another version of {recipe} (recipe_sha1 {built}); it is reused as "
                      f"it is: delete the folder to rebuild it (its cached training runs are then not reused)",
                      stacklevel=2)
    return bench


_FINGERPRINTS: dict[str, str] = {}


def bench_fingerprint(bench: Path) -> str:
    """sha1 of the four annotation files (a rebuilt benchmark gets new training runs)."""
    key = str(Path(bench).resolve())
    if key not in _FINGERPRINTS:
        h = hashlib.sha1()
        for split in ("closed_train", "closed_val", "open_train", "open_val"):
            h.update((Path(bench) / "annotations" / f"{split}.json").read_bytes())
        _FINGERPRINTS[key] = h.hexdigest()[:12]
    return _FINGERPRINTS[key]


def load_coco(bench: Path, split: str) -> dict[str, Any]:
    """``<bench>/annotations/<split>.json``."""
    return json.loads((Path(bench) / "annotations" / f"{split}.json").read_text(encoding="utf-8"))


def subset_bench(bench: Path, fraction: float, seed: int, out: Path) -> Path:
    """A copy of ``bench`` whose training splits keep a seeded ``fraction`` of the ``closed_train`` images.

    ``open_train`` keeps the same images (those of the subset it holds), so both protocols see one image pool; the
    val splits are unchanged. ``fraction >= 1`` returns ``bench`` itself.
    """
    from rtvp.bench.version import scratch_bench

    if fraction >= 1.0:
        return Path(bench)
    closed, opened = load_coco(bench, "closed_train"), load_coco(bench, "open_train")
    ids = np.array(sorted(im["id"] for im in closed["images"]))
    k = max(1, int(round(fraction * len(ids))))
    keep = set(np.random.default_rng(seed).permutation(ids)[:k].tolist())

    def cut(coco: dict[str, Any]) -> dict[str, Any]:
        return {**coco, "images": [im for im in coco["images"] if im["id"] in keep],
                "annotations": [a for a in coco["annotations"] if a["image_id"] in keep]}

    if not (Path(out) / "benchmark.yaml").is_file():
        scratch_bench(bench, out, {"closed_train": cut(closed), "open_train": cut(opened)})
    return Path(out)


def subset_for(runs_root: Path, bench: Path, fraction: float, seed: int = 0) -> Path:
    """:func:`subset_bench` into ``<runs>/_subsets/`` (one folder per benchmark content, share and seed)."""
    bench = Path(bench)
    out = Path(runs_root) / "_subsets" / f"{bench.name}-{bench_fingerprint(bench)}-{fraction:g}-s{seed}"
    return subset_bench(bench, fraction, seed, out)


# ---------------------------------------------------------------------------------------------------------- training
def make_config(bench: Path, protocol: str, budget: Budget, *, stage: str = "both", expert_weights: Path | None = None,
                model: dict[str, Any] | None = None, train: dict[str, Any] | None = None, device: str = "auto"):
    """A ``TrainConfig`` for one cell: evaluation off during training (the scripts evaluate ``best.pt`` = last).

    ``stage="expert"`` trains stage 1 alone for ``budget.expert_epochs`` (a one-stage run trains ``cfg.epochs``).
    """
    from rtvp import TrainConfig
    from rtvp.config import apply_overrides

    epochs = budget.expert_epochs if stage == "expert" else budget.epochs
    cfg = TrainConfig(data=Path(bench), protocol=protocol, stage=stage, expert_weights=expert_weights,
                      epochs=epochs, expert_epochs=budget.expert_epochs, batch=budget.batch,
                      imgsz=budget.imgsz, workers=budget.workers, device=device, val_period=0, patience=0,
                      tensorboard=False, plots=False)
    sets = [f"model.scale={budget.scale}"]
    if budget.sam_weights:
        sets.append(f"model.sam_weights={budget.sam_weights}")
    sets += [f"model.{k}={json.dumps(v)}" for k, v in (model or {}).items()]
    sets += [f"{k}={json.dumps(v)}" for k, v in (train or {}).items()]
    return apply_overrides(cfg, sets)


LATER_MODEL_KEYS = {"objectness": False, "masks": False, "text_proj_freeze": False}
"""Model switches added after results were cached: left out of the run key at these values, so earlier runs stay
valid (their configs had no such key and behaved as these values do)."""


def run_key(cfg: Any) -> str:
    """Content hash of a training config (output folder, workers and device excluded) and its benchmark."""
    from rtvp.config import to_dict
    from rtvp.loss.config import LossConfig

    data = to_dict(dataclasses.replace(cfg, out=None, name="exp", workers=0, device="auto"))
    for key in ("dp_eps", "expert_update", "coupling_ratio"):  # hashed where they were before they left `model`
        data["model"][key] = data.pop(key)
    if cfg.stage == "expert" or not cfg.expert_head_init:  # stage 1 ignores it; False is what runs did before it
        data.pop("expert_head_init")
    for key, before in LATER_MODEL_KEYS.items():  # a switch added later, at the value every earlier run had
        if data["model"].get(key) == before:
            data["model"].pop(key, None)
    if data.get("loss") == to_dict(LossConfig()):  # the loss section came later; its defaults are what runs used
        data.pop("loss")
    elif data.get("loss", {}).get("dice") == 0:  # added later; 0 is what every earlier run did
        data["loss"].pop("dice")
    if data.get("close_mosaic") == 0:  # added later; 0 is what every earlier run did
        data.pop("close_mosaic")
    if data.get("class_text") == "name":  # added later; "name" is what every earlier run did
        data.pop("class_text")
    if data.get("last_period") == 1:  # added later; 1 is what every earlier run did (it does not change the weights)
        data.pop("last_period")
    return config_hash({"cfg": data, "bench": bench_fingerprint(cfg.data)})


def train_run(cfg: Any, runs_root: Path, name: str) -> dict[str, Any]:
    """Train ``cfg`` into ``<runs>/train/<name>-<hash>`` (reused when finished, resumed when interrupted).

    The folder is found by the config hash alone, so an identical config asked for under another name (e.g. the
    all-on ablation cell and open_vocab's RTVPNet) is trained once.

    Returns:
        ``{"run_dir", "best", "expert_best", "wall_s", "train_images", "epochs", "train_images_per_s", "resumed"}``.
    """
    import rtvp
    from rtvp.fileio import atomic_write_text
    from rtvp.training.stages import stage_dirs

    key = run_key(cfg)
    same = sorted((Path(runs_root) / "train").glob(f"*-{key}"))  # the same config trained under another name
    out = same[0] if same else Path(runs_root) / "train" / f"{name}-{key}"
    done = out / "done.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    setup_logging()
    cfg = dataclasses.replace(cfg, out=out, exist_ok=True)
    resume = any(p.is_file() for p in (out / "weights" / "last.pt", out / "expert" / "weights" / "last.pt"))
    t0 = time.perf_counter()
    result = rtvp.train(cfg, resume=resume, validate=False)
    wall = time.perf_counter() - t0
    dirs = stage_dirs(cfg)
    n_train = len(load_coco(cfg.data, f"{cfg.protocol}_train")["images"])
    epochs = sum(cfg.stage_epochs(s) for s in cfg.stages)
    info = {"run_dir": str(out), "best": str(result[cfg.stages[-1]]["best"]),
            "expert_best": str(dirs["expert"] / "weights" / "best.pt") if "expert" in dirs else None,
            "wall_s": round(wall, 1), "train_images": n_train, "epochs": epochs,
            "train_images_per_s": round(n_train * epochs / wall, 2) if wall > 0 else None, "resumed": resume}
    atomic_write_text(done, json.dumps(info, indent=1))
    return info


# -------------------------------------------------------------------------------------------------------- evaluation
def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu`` (``rtvp.device.resolve_device`` as a string)."""
    from rtvp.device import resolve_device as resolve

    return str(resolve(device))


def summarize(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of an ``evaluate`` result (fractions), plus per-class AP."""
    out = {k: metrics.get(k) for k in (*METRIC_KEYS, *GEN_KEYS, *MASK_KEYS) if k in metrics}
    out["images"] = metrics.get("num_images")
    out["per_class_AP"] = {name: v.get("AP") for name, v in (metrics.get("per_class") or {}).items()}
    return out


def evaluate_weights(weights: str | Path, bench: Path, protocol: str, imgsz: int, batch: int = 16,
                     device: str = "auto", diagnostics: bool = False, class_text: str = "stored") -> dict[str, Any]:
    """``predict_split`` on the protocol's val split + ``evaluate``; adds inference images/s (incl. data loading).

    ``diagnostics`` (open / generalized): adds the unseen-class diagnostics of ``rtvp val`` (``agnostic_AR100_50``,
    ``oracle_*``) and ``per_unseen_class`` (AP50 and the diagnostics per unseen class). ``class_text``: the class
    embeddings (``stored`` or ``ensemble``, ``rtvp val --class-text``).
    """
    from rtvp import evaluate
    from rtvp.evaluation.evaluator import protocol_files
    from rtvp.evaluation.inference import checkpoint_masks, open_diagnostics, predict_split

    val_json, train_json = protocol_files(Path(bench), protocol)
    t0 = time.perf_counter()
    preds = predict_split(weights, Path(bench), val_json.stem, protocol, imgsz=imgsz, batch=batch,
                          device=resolve_device(device), class_text=class_text)
    took = time.perf_counter() - t0
    metrics = evaluate(val_json, preds, protocol, train_gt=train_json if train_json.is_file() else None,
                       masks=checkpoint_masks(weights, preds))
    out = summarize(metrics)
    out["eval_images_per_s"] = round(metrics["num_images"] / took, 2) if took > 0 else None
    if diagnostics:
        diag = open_diagnostics(weights, Path(bench), val_json.stem, preds, imgsz, batch, resolve_device(device),
                                class_text)
        out.update({k: v for k, v in diag.items() if k != "per_class"})
        out["per_unseen_class"] = {name: {"AP50": metrics["per_class"].get(name, {}).get("AP50"), **values}
                                   for name, values in diag["per_class"].items()}
    return out


def evaluate_expert_generalized(weights: str | Path, bench: Path, imgsz: int, batch: int = 16,
                                device: str = "auto") -> dict[str, Any]:
    """A closed-set (stage-1) expert on ``open_val`` under the generalized protocol: it can only name seen classes.

    Its AP on every unseen class is 0 by construction (it has no output for them), which the evaluator reports.
    """
    from rtvp import evaluate
    from rtvp.evaluation.evaluator import protocol_files
    from rtvp.evaluation.inference import bind_categories, run_split, split_dataset
    from rtvp.predict.loading import load_model

    model, meta = load_model(weights, resolve_device(device))
    ds = split_dataset(Path(bench), "open_val", "generalized", imgsz, meta.in_channels)
    known = set(meta.vocabulary)
    cats = [c for c in ds.categories if str(c.get("text") or c.get("name")) in known]

    def no_encoder() -> Any:
        raise RuntimeError("a closed-set expert needs no text encoder")

    prompted = bind_categories(model, meta, cats, no_encoder)
    preds = run_split(prompted, ds, [int(c["id"]) for c in cats], batch)
    val_json, train_json = protocol_files(Path(bench), "generalized")
    return summarize(evaluate(val_json, preds, "generalized", train_gt=train_json))


def model_cost(weights: str | Path, imgsz: int, prompts: int) -> dict[str, float]:
    """Parameters (M, all incl. frozen; text encoder excluded) and GFLOPs at ``imgsz`` with ``prompts`` classes."""
    from rtvp.models.cost import flop_report
    from rtvp.predict.loading import load_model

    model, _ = load_model(weights, "cpu")
    params = sum(p.numel() for p in model.parameters())
    gflops = flop_report(model, imgsz, num_prompts=prompts)["total"]
    return {"params_M": round(params / 1e6, 2), "gflops": round(gflops, 2)}


def add_bench_args(parser: Any) -> None:
    """``--bench`` (a built benchmark) or ``--recipe`` + ``--datasets`` (built on first use)."""
    from _common import DATASETS

    parser.add_argument("--bench", type=Path, default=None, help="a benchmark built with `rtvp data build`")
    parser.add_argument("--recipe", type=Path, default=MMIOC_RECIPE, help="recipe built when --bench is not given")
    parser.add_argument("--datasets", type=Path, default=DATASETS, help="--root of the recipe build")


def bench_from_args(args: Any) -> Path:
    """The benchmark a script runs on: the quick synthetic one, ``--bench``, or the recipe built under the runs dir."""
    if args.quick:
        return quick_bench(args.runs_dir)
    if args.bench is not None:
        return Path(args.bench)
    return recipe_bench(args.recipe, args.datasets, args.runs_dir, workers=max(1, getattr(args, "workers", 1)))
