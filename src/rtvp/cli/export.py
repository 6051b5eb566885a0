"""``rtvp export``: ONNX or OpenVINO IR (fp32 / NNCF int8) with the vocabulary baked in (+ sidecar JSON)."""

from __future__ import annotations

from pathlib import Path

import typer

from rtvp.errors import ConfigError

FORMATS = {"onnx": ".onnx", "openvino": ".xml"}


def export(
    weights: Path = typer.Option(..., "--weights", help="Checkpoint written by `rtvp train`."),
    fmt: str = typer.Option("onnx", "--format", help="Export format: onnx | openvino (needs rtvp[openvino])."),
    prompts: str | None = typer.Option(None, "--prompts", help="Comma-separated prompts (default: the checkpoint's "
                                                                "classes)."),
    prompts_file: Path | None = typer.Option(None, "--prompts-file", help="Prompts, one per line."),
    out: Path | None = typer.Option(None, "--out", help="Output file (default model.onnx / model.xml; sidecar .json "
                                                        "next to it)."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Input size (default: the checkpoint's)."),
    nms: bool = typer.Option(False, "--nms/--no-nms", help="Also run threshold + NMS inside the graph."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (>= 18; lower ones cannot be converted)."),
    conf: float = typer.Option(0.25, "--conf", help="Score threshold (baked in with --nms; runner default)."),
    iou: float = typer.Option(0.7, "--iou", help="NMS IoU threshold (baked in with --nms; runner default)."),
    max_det: int = typer.Option(300, "--max-det", help="Detections per image (runner default)."),
    int8: bool = typer.Option(False, "--int8", help="OpenVINO only: NNCF post-training int8 quantization."),
    calib_data: Path | None = typer.Option(None, "--calib-data", help="--int8 calibration images: a benchmark "
                                                                      "folder or a folder of images."),
    calib_split: str = typer.Option("closed_train", "--calib-split", help="Benchmark split of --calib-data."),
    calib_images: int = typer.Option(32, "--calib-images", help="Calibration images used."),
) -> None:
    """Export a checkpoint for deployment; `rtvp predict/serve --weights model.onnx|model.xml` run it."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: use one of {sorted(FORMATS)}")
    if int8 and fmt != "openvino":
        raise ConfigError("--int8 quantizes OpenVINO IR; add --format openvino")
    if int8 and calib_data is None:
        raise ConfigError("--int8 needs --calib-data (a benchmark folder with --calib-split, or a folder of images)")
    out = out or Path(f"model{FORMATS[fmt]}")
    if out.suffix.lower() != FORMATS[fmt]:
        raise ConfigError(f"--out {out}: --format {fmt} writes a {FORMATS[fmt]} file; name it e.g. "
                          f"{out.with_suffix(FORMATS[fmt])}")
    from rtvp.deploy.export import export_onnx, sidecar_path
    from rtvp.vocabulary import parse_prompts

    words = parse_prompts(prompts, prompts_file) if (prompts is not None or prompts_file is not None) else None
    if fmt == "onnx":
        side = export_onnx(weights, out, words, imgsz=imgsz, nms=nms, opset=opset, conf=conf, iou=iou,
                           max_det=max_det)
        what = f"opset {side['opset']}"
    else:
        from rtvp.deploy.openvino_export import calibration_images, export_openvino

        calib = calibration_images(calib_data, calib_split, calib_images) if int8 else []
        source = f"{calib_data} ({calib_split})" if int8 else ""
        side = export_openvino(weights, out, words, imgsz=imgsz, nms=nms, conf=conf, iou=iou, max_det=max_det,
                               int8=int8, calib=calib, calib_source=source)
        what = f"OpenVINO {side['precision']}" + (f", {side['calibration']['images']} calibration images"
                                                  if int8 else "")
    names = ", ".join(f"{p} -> {t}" if p != t else p for p, t in zip(side["class_names"], side["texts"], strict=True))
    typer.echo(f"wrote {out} ({what}, {side['imgsz']} px, {side['channels']} channels, "
               f"NMS {'inside' if nms else 'outside'}) and {sidecar_path(out)}; classes: {names}")


def register(app: typer.Typer) -> None:
    """Attach ``rtvp export`` to the root app."""
    app.command("export")(export)
