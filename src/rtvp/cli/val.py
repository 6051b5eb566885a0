"""``rtvp val``: evaluate a checkpoint or a saved COCO results file on a benchmark protocol."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rtvp.errors import ConfigError


def val(
    data: Path = typer.Option(..., "--data", help="Benchmark folder, YOLO data.yaml, COCO JSON or dataset folder "
                              "(built into runs/.benchmarks/ once, reused while unchanged)."),
    images: Path | None = typer.Option(None, "--images", help="Image folder of a COCO JSON --data (if not beside)."),
    scene: str | None = typer.Option(None, "--scene", help="Scene words of a dataset --data (default: its name)."),
    protocol: str = typer.Option("closed", "--protocol", help="closed | open | generalized"),
    weights: Path | None = typer.Option(None, "--weights", help="Checkpoint to run on the val split."),
    predictions: Path | None = typer.Option(None, "--predictions", help="Saved COCO results JSON to evaluate (mask "
                                            "AP too when the results carry segmentation)."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Inference size (default: the checkpoint's)."),
    batch: int = typer.Option(8, "--batch", help="Inference batch size."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    backend: str = typer.Option("pycocotools", "--backend", help="pycocotools | faster (identical numbers)."),
    plots: Path | None = typer.Option(None, "--plots", help="Folder for PR-curve and confusion-matrix PNGs."),
    save: Path | None = typer.Option(None, "--save", help="Also write the predictions (COCO results) here."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    diagnostics: bool = typer.Option(True, "--diagnostics/--no-diagnostics", help="open / generalized: class-"
                                     "agnostic recall of the unseen boxes and (RTVPNet --weights) oracle-box zero-shot "
                                     "accuracy, overall and per unseen class."),
    class_text: str = typer.Option("stored", "--class-text", help="RTVPNet class embeddings: stored (the "
                                   "checkpoint's, as trained) | ensemble (mean of each class's phrasings: synonyms "
                                   "and a visual description)."),
) -> None:
    """Evaluate detections with the COCO API: AP, AP50, AP75, APs/m/l and breakdowns (+ mask AP for mask results)."""
    from rtvp.cli.data_input import benchmark_for
    from rtvp.evaluation.evaluator import evaluate, format_table, protocol_files
    from rtvp.evaluation.mask_eval import mask_scope

    if (weights is None) == (predictions is None):
        raise ConfigError("give exactly one of --weights (run a checkpoint) or --predictions (a COCO results file)")
    if class_text not in ("stored", "ensemble"):
        raise ConfigError(f"--class-text {class_text}: choose 'stored' (the checkpoint's rows) or 'ensemble'")
    data = benchmark_for(data, Path("runs") / ".benchmarks", images, scene)
    val_json, train_json = protocol_files(data, protocol)
    if weights is not None:
        from rtvp.evaluation.inference import checkpoint_masks, predict_split

        results = predict_split(weights, data, val_json.stem, protocol, imgsz=imgsz, batch=batch, device=device,
                                class_text=class_text)
        if save is not None:
            from rtvp.fileio import atomic_write_text

            atomic_write_text(save, json.dumps(results))
    else:
        results = str(predictions)
    masks = weights is not None and checkpoint_masks(weights, results)
    metrics = evaluate(val_json, results, protocol, train_gt=train_json if train_json.is_file() else None,
                       backend=backend, plots_dir=plots, masks=masks)
    if diagnostics and protocol != "closed":
        metrics = _diagnose(metrics, data, val_json, results, weights, imgsz, batch, device, class_text)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{data.name} · {protocol} · {metrics['num_images']} images")
    table.add_column("class")
    for col in ("AP", "AP50", "AP75", "instances"):
        table.add_column(col, justify="right")
    extra = [k for k in ("mask_AP", "mask_AP50", "agnostic_recall", "oracle_top1_scene", "oracle_top1_all")
             if any(k in m for m in metrics["per_class"].values())]
    for col in extra:
        table.add_column(col.replace("_", " "), justify="right")
    for name, m in metrics["per_class"].items():
        cells = [m.get(k) for k in ("AP", "AP50", "AP75")]
        table.add_row(name, *("-" if v is None else f"{v:.3f}" for v in cells), str(m["instances"]),
                      *("-" if m.get(k) is None else f"{m[k]:.3f}" for k in extra))
    console = Console()
    console.print(table)
    console.print("  ".join(f"{k} {v}" for k, v in format_table(metrics)))
    if (scope := mask_scope(metrics)) is not None:
        console.print(scope)
    diag = [(k, metrics[k]) for k in ("agnostic_AR100_50", "oracle_top1_scene", "oracle_chance_scene",
                                      "oracle_top1_all", "oracle_chance_all") if metrics.get(k) is not None]
    if diag:
        console.print("unseen diagnostics: " + "  ".join(f"{k} {v:.4f}" for k, v in diag))


def _diagnose(metrics: dict, data: Path, val_json: Path, results, weights: Path | None,  # noqa: ANN001
              imgsz: int | None, batch: int, device: str, class_text: str = "stored") -> dict:
    """Merge the unseen-class diagnostics (``rtvp.evaluation.diagnostics``) into ``metrics``."""
    from rtvp.evaluation.diagnostics import agnostic_recall, merge_diagnostics
    from rtvp.evaluation.evaluator import load_json

    if weights is not None:
        from rtvp.evaluation.inference import open_diagnostics

        return merge_diagnostics(metrics, open_diagnostics(weights, data, val_json.stem, results, imgsz, batch,
                                                           device, class_text))
    gt = load_json(val_json, "ground-truth")
    unseen = [c["id"] for c in gt["categories"] if c.get("split", "seen") == "unseen"]
    return merge_diagnostics(metrics, agnostic_recall(gt, load_json(results, "predictions"), unseen))


def register(app: typer.Typer) -> None:
    """Attach ``rtvp val`` to the root app."""
    app.command("val")(val)
