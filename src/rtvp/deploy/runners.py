"""Pick the runner for ``--weights``: a checkpoint (``Predictor``), an ONNX file or an OpenVINO IR (``.xml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtvp.errors import ConfigError

EXPORTED_SUFFIXES = {".onnx": "ONNX", ".xml": "OpenVINO IR"}


def is_exported(weights: str | Path) -> bool:
    """True for files written by ``rtvp export`` (``.onnx`` / ``.xml``), judged by the suffix."""
    return Path(weights).suffix.lower() in EXPORTED_SUFFIXES


def open_predictor(weights: str | Path, device: str = "cpu", imgsz: int | None = None, conf: float = 0.25,
                   iou: float = 0.7, max_det: int = 300, batch: int = 8, amp: bool = False,
                   mask_thr: float = 0.5) -> Any:
    """A predictor with the ``Predictor`` contract for a checkpoint, an ``.onnx`` file or an OpenVINO ``.xml``.

    Args:
        weights: checkpoint, ``.onnx`` (onnxruntime) or ``.xml`` (OpenVINO, extra ``rtvp[openvino]``).
        device: torch device for checkpoints; exported files run on the CPU (only ``cpu`` is accepted).
        imgsz: inference size; an exported file only runs at its baked size.
        conf: score threshold.
        iou: NMS IoU threshold.
        max_det: detections per image.
        batch: images per forward pass.
        amp: bf16 autocast forward (checkpoints on the CPU, ``Predictor(amp=...)``).
        mask_thr: mask probability a pixel must exceed (models with the mask branch).

    Raises:
        ConfigError: a GPU device, another size or ``amp`` for an exported file (the message names the fix).
    """
    path = Path(weights)
    kind = EXPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        from rtvp.predict.predictor import Predictor

        return Predictor(path, device=device, imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, batch=batch, amp=amp,
                         mask_thr=mask_thr)
    if device != "cpu":
        raise ConfigError(f"{path}: {kind} files run on the CPU; drop --device {device} (or use the checkpoint)")
    if amp:
        raise ConfigError(f"{path}: --amp applies to checkpoints; {kind} files run in their runtime's precision "
                          "(export OpenVINO, which picks bf16 itself on CPUs that have it)")
    if path.suffix.lower() == ".onnx":
        from rtvp.deploy.onnx_runner import OnnxPredictor as Runner
    else:
        from rtvp.deploy.openvino_runner import OpenVINOPredictor as Runner
    runner = Runner(path, conf=conf, iou=iou, max_det=max_det, batch=batch, mask_thr=mask_thr)
    if imgsz is not None and int(imgsz) != runner.imgsz:
        raise ConfigError(f"{path}: exported at {runner.imgsz} px, so --imgsz {imgsz} cannot apply; leave --imgsz "
                          f"out or re-export with `rtvp export --imgsz {imgsz}`")
    return runner
