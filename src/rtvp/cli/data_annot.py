"""``rtvp data autolabel | review export | review import | quality``: the annotation pipeline (paper §3.1.2-3.1.3).

Thin wrappers over :mod:`rtvp.annotate.autolabel`, :mod:`rtvp.annotate.review`, :mod:`rtvp.annotate.quality` and
:mod:`rtvp.annotate.label_noise`; heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from rtvp.errors import ConfigError, DataError

review_app = typer.Typer(help="Export the auto-annotation review queue to Label Studio and import the review.",
                         no_args_is_help=True)


class ReviewFormat(str, Enum):
    """Annotation-tool formats of ``rtvp data review``."""

    labelstudio = "labelstudio"


def _train_config(config: Path | None, overrides: list[str], scale: str | None, **flags: Any) -> Any:
    from rtvp.cli.train import build_config

    return build_config(config, overrides, model=f"rtvpnet-{scale}" if scale else None, **flags)


def _levels(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--noise '{text}': expected comma-separated percentages, e.g. 0,10,30") from None


def _print_quality(result: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from rtvp.annotate.quality import scene_rows, summary_rows

    console = Console()
    table = Table(title="Annotation quality", title_justify="left", box=box.SIMPLE_HEAD)
    for name, justify in (("metric", "left"), ("value", "right"), ("notes", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in summary_rows(result):
        table.add_row(*row)
    console.print(table)
    if "per_scene" in result:  # plain Markdown: wide tables must not be truncated by the terminal width
        headers, rows = scene_rows(result)
        typer.echo("Per scene\n| " + " | ".join(headers) + " |")
        for row in rows:
            typer.echo("| " + " | ".join(row) + " |")


def quality(
    reference: Path | None = typer.Argument(None, help="Reference COCO file (e.g. expert labels)."),
    candidate: Path | None = typer.Argument(None, help="Candidate COCO file of the same images (e.g. auto labels)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    out: Path | None = typer.Option(None, "--out", help="Write report.md, report.json, iou_by_scene.png here."),
    annotation_source: str | None = typer.Option(None, "--annotation-source",
                                                 help="Compare only candidate images with this annotation_source "
                                                      "(e.g. auto: the auto-labelled images of an autolabel bench)."),
    noise_bench: Path | None = typer.Option(None, "--noise-experiment", help="Benchmark for the label-noise "
                                            "experiment (retrain per --noise level, report ΔAP50)."),
    noise: str = typer.Option("0,5", "--noise", help="Label-noise levels in percent (0 is always run)."),
    model: str = typer.Option("expert-n", "--model", help="Model of the noise experiment, e.g. expert-n, rtvpnet-s."),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs per noise level (fixed budget)."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Training image size of the noise experiment."),
    batch: int | None = typer.Option(None, "--batch", help="Batch size of the noise experiment."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda."),
    workers: int | None = typer.Option(None, "--workers", help="Dataloader workers."),
    seed: int = typer.Option(0, "--seed", help="Noise seed."),
    work: Path | None = typer.Option(None, "--work", help="Folder of the noise runs (default <out>/noise or "
                                     "runs/noise)."),
    resume: bool = typer.Option(False, "--resume", help="Reuse noise levels already finished in --work."),
    config: Path | None = typer.Option(None, "--config", help="TrainConfig YAML for the noise experiment."),
    overrides: list[str] = typer.Option([], "--set", help="TrainConfig override key=value (noise experiment)."),
) -> None:
    """Annotation quality (κ, IoU, precision/recall, ANOVA across scenes) and label-noise robustness (Table II).

    Compares two labellings of the same images and/or retrains per label-noise level; prints a Table II-like report.
    """
    from rtvp.annotate.quality import match_files, summarize, write_report

    if (reference is None) != (candidate is None) or (reference is None and noise_bench is None):
        raise ConfigError("give REFERENCE and CANDIDATE COCO files, and/or --noise-experiment BENCH")
    result: dict[str, Any] = {}
    matches = None
    if reference is not None and candidate is not None:
        matches = match_files(reference, candidate, annotation_source)
        result = summarize(matches)
    if noise_bench is not None:
        from dataclasses import replace

        from rtvp.annotate.label_noise import noise_robustness
        from rtvp.cli.train import build_config
        from rtvp.training.loggers import console_logging

        console_logging()

        cfg = build_config(config, list(overrides), model=model, epochs=epochs, imgsz=imgsz, batch=batch,
                           device=device, workers=workers)
        cfg = replace(cfg, protocol=cfg.protocol if cfg.arch == "rtvpnet" else "closed")
        folder = work or (out / "noise" if out is not None else Path("runs") / "noise")
        result["noise"] = noise_robustness(noise_bench, _levels(noise), cfg, folder, seed=seed, resume=resume)
    if out is not None:
        write_report(result, out, matches)
    if as_json:
        typer.echo(json.dumps(result, indent=1, ensure_ascii=False))
    else:
        _print_quality(result)
        if out is not None:
            typer.echo(f"wrote {out / 'report.md'} and {out / 'report.json'}")


@review_app.command("export")
def review_export(
    source: Path = typer.Argument(..., help="Auto-labelled benchmark (its review/queue.json) or a queue file."),
    fmt: ReviewFormat = typer.Option(ReviewFormat.labelstudio, "--format", help="Annotation-tool format."),
    out: Path = typer.Option(..., "--out", help="Tasks file to write (Label Studio JSON; a .xml labeling config "
                             "is written next to it)."),
    prefix: str = typer.Option("/data/local-files/?d=", "--image-prefix", help="Prepended to each image's "
                               "file_name (default: Label Studio local files with the benchmark as document root)."),
    include_reviewed: bool = typer.Option(False, "--all", help="Also export items already reviewed."),
) -> None:
    """Export the pending review items as Label Studio tasks with the detectors' boxes as predictions."""
    from rtvp.annotate.review import export_labelstudio

    path, tasks, regions = export_labelstudio(source, out, prefix, include_reviewed)
    typer.echo(f"wrote {tasks} tasks ({regions} candidate regions) to {path} and the labeling config "
               f"{path.with_suffix('.xml')}")


@review_app.command("import")
def review_import(
    file: Path = typer.Argument(..., help="Label Studio JSON export of the reviewed tasks."),
    bench: Path = typer.Option(..., "--bench", help="The benchmark the queue came from."),
    out: Path | None = typer.Option(None, "--out", help="New benchmark version (default: update --bench)."),
) -> None:
    """Apply accept / edit / reject / added decisions to closed_train (provenance source: expert)."""
    from rtvp.annotate.review import apply_review

    s = apply_review(file, bench, out)
    typer.echo(f"{s['reviewed_images']} reviewed images: {s['accepted']} accepted, {s['edited']} edited, "
               f"{s['rejected']} rejected, {s['added']} added; {s['pending']} items still pending -> {s['out']}")


def _labeled_ids(path: Path) -> tuple[int, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: labelled-ids file not found") from None
    try:
        ids = json.loads(text) if text.lstrip().startswith("[") else [int(v) for v in text.split()]
        return tuple(int(v) for v in ids)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise DataError(f"{path}: expected a JSON list of image ids or one id per line") from None


def autolabel(
    bench: Path = typer.Argument(..., help="Benchmark whose closed_train images are partly labelled."),
    out: Path = typer.Option(..., "--out", help="New benchmark version (work/ inside keeps runs and caches)."),
    labeled_fraction: float = typer.Option(0.15, "--labeled-fraction", help="Share of closed_train images "
                                           "treated as expert-labelled (seeded, per scene)."),
    labeled_ids: Path | None = typer.Option(None, "--labeled-ids", help="File of labelled image ids (JSON list "
                                            "or one per line); overrides --labeled-fraction."),
    weights_ov: Path | None = typer.Option(None, "--weights-ov", help="RTVPNet checkpoint (skip its training)."),
    weights_expert: Path | None = typer.Option(None, "--weights-expert", help="Expert checkpoint (skip training)."),
    scale: str | None = typer.Option(None, "--scale", help="Model scale of both detectors: tiny, n, s, l."),
    epochs: int | None = typer.Option(None, "--epochs", help="Training epochs of each detector."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Training (and inference) image size."),
    batch: int | None = typer.Option(None, "--batch", help="Training batch size."),
    workers: int | None = typer.Option(None, "--workers", help="Dataloader workers."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    iou: float = typer.Option(0.5, "--iou", help="Agreement IoU threshold."),
    min_iou: float = typer.Option(0.1, "--min-iou", help="Below this IoU two boxes are different objects."),
    conf: float = typer.Option(0.25, "--conf", help="Score threshold of both detectors."),
    seed: int = typer.Option(0, "--seed", help="Seed of the labelled subset and the trainings."),
    independent: bool = typer.Option(False, "--independent", help="Train RTVPNet on its own (stage 1 included) "
                                     "instead of starting it from the trained expert."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    config: Path | None = typer.Option(None, "--config", help="TrainConfig YAML for both trainings."),
    overrides: list[str] = typer.Option([], "--set", help="TrainConfig override key=value, e.g. model.sam=false."),
) -> None:
    """Auto-annotate the unlabelled images with two detectors; agreed boxes -> new benchmark, the rest -> review."""
    from rtvp.annotate.autolabel import AutolabelConfig
    from rtvp.annotate.autolabel import autolabel as run
    from rtvp.training.loggers import console_logging

    console_logging()
    cfg = AutolabelConfig(labeled_fraction=labeled_fraction,
                          labeled_ids=_labeled_ids(labeled_ids) if labeled_ids is not None else None, iou=iou,
                          min_iou=min_iou, conf=conf, seed=seed, weights_ov=weights_ov, weights_expert=weights_expert,
                          ov_from_expert=not independent, device=device)
    train_cfg = _train_config(config, list(overrides), scale, epochs=epochs, imgsz=imgsz, batch=batch,
                              device=device, workers=workers)
    s = run(bench, out, cfg, train_cfg, resume=resume, progress=not quiet)
    queue = ", ".join(f"{k} {v}" for k, v in s["queue"].items())
    typer.echo(f"{s['labeled_images']} expert-labelled images ({s['expert_labels']} labels), {s['auto_images']} "
               f"auto-labelled ({s['auto_labels']} agreed labels, {s['redundant']} redundant boxes dropped, "
               f"{s['unreadable']} unreadable)")
    typer.echo(f"review queue: {queue}  ->  {out / 'review' / 'queue.json'}")
    t = s["seconds"]
    typer.echo(f"wrote {out} in {t['total']:.1f} s (training {t['train']:.1f} s, prediction {t['predict']:.1f} s)")


def register(app: typer.Typer) -> None:
    """Add ``autolabel``, ``review`` (export, import) and ``quality`` to the ``rtvp data`` app."""
    app.command("autolabel")(autolabel)
    app.command("quality")(quality)
    app.add_typer(review_app, name="review")
