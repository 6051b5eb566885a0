"""``rtvp predict``: detect defects with any vocabulary (synonyms, Chinese/Japanese terms resolve first)."""

from __future__ import annotations

from pathlib import Path

import typer


def predict(
    weights: Path = typer.Option(..., "--weights", help="Checkpoint written by `rtvp train` (best.pt / last.pt), or "
                                                        "a file from `rtvp export` (.onnx, OpenVINO .xml)."),
    source: str = typer.Option(..., "--source", help="Image file, folder (recursive) or glob pattern."),
    prompts: str | None = typer.Option(None, "--prompts", help='Comma-separated prompts, e.g. "scratch,划痕,hole".'),
    prompts_file: Path | None = typer.Option(None, "--prompts-file", help="Prompts, one per line (# comments)."),
    exemplars: Path | None = typer.Option(None, "--exemplars", help='Example boxes of defects to find more of: a JSON '
                                          'list [{"image": "a.png", "box": [x1, y1, x2, y2], "name": "spur"}] '
                                          '(pixels, name optional; RTVPNet checkpoints). --prompts may be given too.'),
    out: Path = typer.Option(Path("runs/predict"), "--out", help="Output folder."),
    conf: float = typer.Option(0.25, "--conf", help="Score threshold."),
    iou: float = typer.Option(0.7, "--iou", help="NMS IoU threshold."),
    max_det: int = typer.Option(300, "--max-det", help="Detections kept per image."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Inference size (default: the checkpoint's)."),
    batch: int = typer.Option(8, "--batch", help="Images per forward pass."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    save_maps: bool = typer.Option(False, "--save-maps", help="Write uncertainty/selection overlays (Fig. 13)."),
    save_images: bool = typer.Option(True, "--save-images/--no-save-images", help="Write images with boxes."),
    amp: bool = typer.Option(False, "--amp/--no-amp", help="bf16 autocast forward on the CPU (checkpoints; faster "
                             "on CPUs with AMX / AVX-512 BF16, boxes within bf16 rounding of fp32)."),
    px_size: float | None = typer.Option(None, "--px-size", metavar="MM", help="Pixel size in millimetres per pixel "
                                         "(> 0): entries with masks also get area_mm (mm²), length_mm, width_mm."),
    mask_thr: float = typer.Option(0.5, "--mask-thr", help="Mask probability a pixel must exceed (mask branch); "
                                   "lower keeps more of thin defects such as cracks."),
) -> None:
    """Detect the prompted defects; writes predictions.json, labels/*.txt, images/ and maps/ under --out.

    Without --prompts (or --exemplars) the checkpoint's own vocabulary is used. Exported files (.onnx, .xml) run on
    the CPU with the vocabulary baked in at export. Models with a mask branch add to each entry its mask
    (segmentation, COCO RLE) and area_px, length_px (along the skeleton), width_px (max width), plus the _mm twins with
    --px-size; the drawn images show the masks.
    """
    from rtvp.deploy.runners import is_exported, open_predictor
    from rtvp.masks import check_px_size
    from rtvp.predict.inputs import iter_sources
    from rtvp.predict.masks import check_mask_thr
    from rtvp.predict.outputs import check_output_dir, save_predictions
    from rtvp.vocabulary import parse_prompts

    check_output_dir(out)  # before the model loads and the images run
    check_px_size(px_size, "--px-size")
    check_mask_thr(mask_thr)
    words = parse_prompts(prompts, prompts_file) if (prompts is not None or prompts_file is not None) else None
    shots = None
    if exemplars is not None:
        from rtvp.errors import ConfigError
        from rtvp.predict.exemplars import load_exemplars

        shots = load_exemplars(exemplars)
        if is_exported(weights):
            raise ConfigError(f"--exemplars needs the checkpoint: {weights.name} has its prompts baked in at export")
    sources = iter_sources(source)
    predictor = open_predictor(weights, device=device, imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, batch=batch,
                               amp=amp, mask_thr=mask_thr)
    summary = save_predictions(predictor, sources, out, words, save_maps=save_maps, save_images=save_images,
                               exemplars=shots, px_size=px_size)
    _report(summary, out, from_checkpoint=words is None and shots is None)
    if px_size is not None and not summary.masks:
        from rich.console import Console

        Console().print("[yellow]--px-size: this model returned no masks, so no measurements were written[/]")


def _report(summary, out: Path, from_checkpoint: bool) -> None:  # noqa: ANN001 - PredictSummary, imported lazily
    from rich.console import Console
    from rich.table import Table

    console = Console()
    vocab = Table(title="vocabulary")
    for col in ("#", "prompt", "canonical term", "encoded as"):
        vocab.add_column(col)
    for k, r in enumerate(summary.resolved):
        canonical = "(checkpoint class)" if from_checkpoint else (r.canonical or "- (free text)")
        vocab.add_row(str(k), r.prompt, canonical, r.text)
    console.print(vocab)
    counts = Table(title=f"detections ({len(summary.counts)} images)")
    counts.add_column("image")
    counts.add_column("total", justify="right")
    counts.add_column("per prompt")
    limit = 50
    for name, per in summary.counts[:limit]:
        detail = ", ".join(f"{summary.resolved[k].prompt}: {n}" for k, n in enumerate(per) if n)
        counts.add_row(name, str(sum(per)), detail or "-")
    if len(summary.counts) > limit:
        counts.add_row(f"... {len(summary.counts) - limit} more", "", "")
    console.print(counts)
    for src, why in summary.skipped:
        console.print(f"[yellow]skipped unreadable image:[/] {why or src}")
    if summary.maps_missing:
        console.print("[yellow]--save-maps: this model has no RVP maps (closed-set expert or rvp off)[/]")
    total = sum(sum(per) for _, per in summary.counts)
    console.print(f"{total} detections in {len(summary.counts)} images -> {out}/predictions.json, labels/, images/"
                  + (", maps/" if summary.counts and not summary.maps_missing and any(
                      (out / "maps").glob("*.png")) else ""))


def register(app: typer.Typer) -> None:
    """Attach ``rtvp predict`` to the root app."""
    app.command("predict")(predict)
