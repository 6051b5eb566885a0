"""``rtvp export``: ONNX with the vocabulary baked in (+ sidecar JSON), for onnxruntime deployment."""

from __future__ import annotations

from pathlib import Path

import typer

from rtvp.errors import ConfigError


def export(
    weights: Path = typer.Option(..., "--weights", help="Checkpoint written by `rtvp train`."),
    fmt: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    prompts: str | None = typer.Option(None, "--prompts", help="Comma-separated prompts (default: the checkpoint's "
                                                                "classes)."),
    prompts_file: Path | None = typer.Option(None, "--prompts-file", help="Prompts, one per line."),
    out: Path = typer.Option(Path("model.onnx"), "--out", help="Output .onnx file (sidecar .json next to it)."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Input size (default: the checkpoint's)."),
    nms: bool = typer.Option(False, "--nms/--no-nms", help="Also run threshold + NMS inside the graph."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (>= 18; lower ones cannot be converted)."),
    conf: float = typer.Option(0.25, "--conf", help="Score threshold (baked in with --nms; runner default)."),
    iou: float = typer.Option(0.7, "--iou", help="NMS IoU threshold (baked in with --nms; runner default)."),
    max_det: int = typer.Option(300, "--max-det", help="Detections per image (runner default)."),
) -> None:
    """Export a checkpoint for deployment; run it with rtvp.deploy.onnx_runner.OnnxPredictor."""
    if fmt.lower() != "onnx":
        raise ConfigError(f"--format {fmt}: only 'onnx' is supported")
    from rtvp.deploy.export import export_onnx, sidecar_path
    from rtvp.vocabulary import parse_prompts

    words = parse_prompts(prompts, prompts_file) if (prompts is not None or prompts_file is not None) else None
    side = export_onnx(weights, out, words, imgsz=imgsz, nms=nms, opset=opset, conf=conf, iou=iou, max_det=max_det)
    names = ", ".join(f"{p} -> {t}" if p != t else p for p, t in zip(side["class_names"], side["texts"], strict=True))
    typer.echo(f"wrote {out} (opset {side['opset']}, {side['imgsz']} px, {side['channels']} channels, "
               f"NMS {'inside' if nms else 'outside'}) and {sidecar_path(out)}; classes: {names}")


def register(app: typer.Typer) -> None:
    """Attach ``rtvp export`` to the root app."""
    app.command("export")(export)
