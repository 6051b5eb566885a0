"""``rtvp demo``: the README main job, end to end on data the project renders itself (no downloads).

synthetic defects -> MMIOC benchmark -> train rtvpnet (closed protocol, then open protocol: unseen classes held out;
``--closed-model expert-n`` trains the closed-set expert alone instead) -> evaluate -> drawn detections ->
``DIR/metrics.json`` (``{"closed": {...}, "open": {...}, "models": {...}}``, fractions in [0, 1]).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import typer

METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "mask_AP", "mask_AP50")
OPEN_KEYS = (*METRIC_KEYS, "AP_seen", "AP_unseen", "HM")


def synth_recipe_path() -> Path:
    """The shipped recipe that builds a benchmark from ``rtvp data synth`` output."""
    from importlib import resources

    return Path(str(resources.files("rtvp") / "assets" / "synth.yaml"))


def make_benchmark(out: Path, images: int, size: int, seed: int) -> Path:
    """Render the synthetic dataset and build its benchmark under ``out``; returns the benchmark folder."""
    from rtvp.bench.build import build_benchmark
    from rtvp.bench.recipe import load_recipe
    from rtvp.bench.synth import write_synth

    synth, bench = out / "synth", out / "bench"
    write_synth(synth, seed=seed, images=images, size=size, overwrite=True)
    build_benchmark(load_recipe(synth_recipe_path()), synth, bench, workers=1)
    return bench


def train_protocol(bench: Path, out: Path, protocol: str, base: Any) -> Path:
    """Train one protocol (expert pre-training + full model) from the ``TrainConfig`` ``base``; returns best.pt."""
    from rtvp.evaluation.validation import make_eval_factory
    from rtvp.training.stages import train as train_stages

    cfg = dataclasses.replace(base, data=bench, protocol=protocol, out=out / "runs" / protocol, exist_ok=True)
    result = train_stages(cfg, make_eval=make_eval_factory(cfg))
    return Path(result["full" if "full" in result else "expert"]["best"])


def evaluate_weights(weights: Path, bench: Path, protocol: str, imgsz: int, device: str) -> dict[str, Any]:
    """Metrics of a checkpoint on a protocol (generalized for the open run, so seen/unseen/HM are reported)."""
    from rtvp.evaluation.evaluator import evaluate, protocol_files
    from rtvp.evaluation.inference import checkpoint_masks, predict_split

    val_json, train_json = protocol_files(bench, protocol)
    results = predict_split(weights, bench, val_json.stem, protocol, imgsz=imgsz, device=device)
    metrics = evaluate(val_json, results, protocol, train_gt=train_json, masks=checkpoint_masks(weights, results))
    if protocol == "open":
        generalized = predict_split(weights, bench, val_json.stem, "generalized", imgsz=imgsz, device=device)
        g = evaluate(val_json, generalized, "generalized", train_gt=train_json,
                     masks=checkpoint_masks(weights, generalized))
        metrics.update({k: g[k] for k in ("AP_seen", "AP_unseen", "HM")})
    return metrics


def draw_examples(weights: Path, bench: Path, out: Path, count: int, device: str) -> list[Path]:
    """Draw the detections of ``count`` closed-val images into ``out``."""
    import cv2

    from rtvp.imaging import read_image
    from rtvp.predict.draw import draw_detections
    from rtvp.predict.predictor import Predictor

    val = json.loads((bench / "annotations" / "closed_val.json").read_text())
    paths = [bench / im["file_name"] for im in val["images"] if im.get("source") != ""][:count]
    predictor = Predictor(weights, device=device, conf=0.25)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, dets in zip(paths, predictor.predict(paths), strict=True):
        image = draw_detections(read_image(path), dets)
        target = out / f"{path.stem}.png"
        cv2.imwrite(str(target), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        written.append(target)
    return written


def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="Output folder (synth data, benchmark, runs, images)."),
    images: int = typer.Option(240, "--images", help="Synthetic images to render."),
    size: int | None = typer.Option(None, "--size", help="Synthetic image side in pixels (default: --imgsz, so "
                                    "the images are rendered at the training size and none is downscaled)."),
    model: str = typer.Option("rtvpnet-n", "--model", help="rtvpnet-{n,s,l,tiny} (the open protocol's model)."),
    closed_model: str | None = typer.Option(None, "--closed-model", help="Closed-protocol model: --model by "
                                            "default (--expert-epochs + --epochs), or an expert-* alone "
                                            "(--closed-epochs)."),
    closed_epochs: int = typer.Option(40, "--closed-epochs", help="Epochs of an expert-* closed-protocol model."),
    epochs: int = typer.Option(14, "--epochs", help="Epochs of the full model (closed protocol, rtvpnet-*)."),
    expert_epochs: int = typer.Option(26, "--expert-epochs", help="Epochs of expert pre-training (closed, rtvpnet-*)."),
    open_epochs: int = typer.Option(3, "--open-epochs", help="Epochs of the full model (open protocol)."),
    open_expert_epochs: int = typer.Option(10, "--open-expert-epochs", help="Expert epochs (open protocol)."),
    imgsz: int = typer.Option(192, "--imgsz", help="Training/eval image size."),
    batch: int = typer.Option(8, "--batch", help="Batch size."),
    seed: int = typer.Option(0, "--seed", help="Random seed (data and training)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    workers: int = typer.Option(0, "--workers", help="Dataloader workers."),
    masks: bool = typer.Option(True, "--masks/--no-masks", help="Train the instance-mask branch (the synthetic "
                               "defects have masks); metrics.json gets mask_AP / mask_AP50."),
    amp: bool | None = typer.Option(None, "--amp/--no-amp", help="Mixed precision (default auto: bf16 on CPUs "
                                    "with native bf16, fp16 on CUDA, else fp32)."),
    overrides: list[str] = typer.Option([], "--set", help="TrainConfig override, e.g. --set model.sam=false."),
) -> None:
    """Synthetic data -> benchmark -> train rtvpnet (closed + open) -> evaluate -> drawn detections."""
    from rich.console import Console
    from rich.table import Table

    from rtvp import omp_wait_policy
    from rtvp.config import apply_overrides
    from rtvp.device import autocast_dtype, resolve_device
    from rtvp.fileio import atomic_write_text
    from rtvp.training.config import TrainConfig

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    console, start = Console(width=120), time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]1/4[/] rendering {images} synthetic images and building the benchmark in {out}")
    bench = make_benchmark(out, images, imgsz if size is None else size, seed)
    # Budget (benchmarks/results/demo, 2-core AMD EPYC, bf16, libgomp's wait policy): most epochs go to the cheap
    # expert stage (stage 2 starts from it with zero-initialised prompt/projection branches), mosaic at 0.5 and off
    # for each stage's last epochs (close_mosaic, the TrainConfig default), one final eval. With the mask branch,
    # closed 26 + 14 epochs: closed AP50 0.601 / 0.601 / 0.651 (mean 0.618) over seeds 0-2, 310-326 s on a quiet
    # machine; 26 + 12: 0.640 / 0.570 / 0.570 (mean 0.593), 303-323 s.
    # last_period=0: each stage writes its checkpoint once, at its end (a demo is rerun, not resumed; rtvpnet-n's
    # last.pt with EMA and optimizer state is 183 MiB): 22 s outside the training epochs instead of 35-41 s
    base = TrainConfig(imgsz=imgsz, batch=batch, seed=seed, device=device, workers=workers, warmup_epochs=1.0,
                       ema_tau=100.0, patience=0, tensorboard=False, amp=amp, last_period=0).with_model_name(model)
    base = dataclasses.replace(base, augment=dataclasses.replace(base.augment, mosaic=0.5),
                               model=dataclasses.replace(base.model, masks=masks))
    base = apply_overrides(base, list(overrides)) if overrides else base
    # expert-n alone for 40 epochs (241 s of training) scored below rtvpnet-n's 22 + 8 (294 s) here: closed AP50
    # 0.471 vs 0.517, mask AP50 0.340 vs 0.441 (seed 0, benchmarks/results/demo), so the default stays two-stage
    closed_name = closed_model or model
    closed_base = base.with_model_name(closed_name)
    budgets = {"closed": (expert_epochs, closed_epochs if closed_base.arch == "expert" else epochs),
               "open": (open_expert_epochs, open_epochs)}
    metrics: dict[str, dict[str, Any]] = {}
    eval_device = "cuda" if base.device.startswith("cuda") else "cpu"
    for step, protocol in ((2, "closed"), (3, "open")):
        name, proto_base = (closed_name, closed_base) if protocol == "closed" else (model, base)
        console.print(f"[bold]{step}/4[/] training {name} on the {protocol} protocol")
        n_expert, n_full = budgets[protocol]
        # no evaluation while training (best.pt = the final weights of each stage): the one that counts runs below
        run_cfg = dataclasses.replace(proto_base, expert_epochs=n_expert, epochs=n_full, val_period=0)
        best = train_protocol(bench, out, protocol, run_cfg)
        full = evaluate_weights(best, bench, protocol, imgsz, eval_device)
        keys = METRIC_KEYS if protocol == "closed" else OPEN_KEYS
        metrics[protocol] = {k: full.get(k) for k in keys} | {"weights": str(best)}
        atomic_write_text(out / f"metrics_{protocol}_full.json", json.dumps(full, indent=1, ensure_ascii=False))
    console.print("[bold]4/4[/] drawing detections")
    drawn = draw_examples(Path(metrics["closed"]["weights"]), bench, out / "detections", 4, eval_device)
    metrics["models"] = {"closed": closed_name, "open": model}
    metrics["time_s"] = round(time.perf_counter() - start, 1)  # type: ignore[assignment]
    metrics["precision"] = autocast_dtype(resolve_device(base.device), base.amp)[1]  # type: ignore[assignment]
    metrics["omp_wait_policy"] = omp_wait_policy()  # type: ignore[assignment]
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
    table = Table(title=f"rtvp demo · {closed_name} (closed) · {model} (open) · {imgsz} px · {metrics['time_s']} s")
    table.add_column("protocol")
    for k in OPEN_KEYS:
        table.add_column(k, justify="right")
    for protocol in ("closed", "open"):
        m = metrics[protocol]
        table.add_row(protocol, *("-" if m.get(k) is None else f"{m[k]:.3f}" for k in OPEN_KEYS))
    console.print(table)
    console.print(f"metrics: {out / 'metrics.json'}   images: {', '.join(str(p) for p in drawn[:2])} ...")


def register(app: typer.Typer) -> None:
    """Attach ``rtvp demo`` to the root app."""
    app.command("demo")(demo)
