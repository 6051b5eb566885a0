"""OpenVINO IR export (``rtvp export --format openvino [--int8]``), optional extra ``rtvp[openvino]``.

The IR is converted from the ONNX graph of :func:`rtvp.deploy.export.export_onnx` (same inputs, outputs and baked
vocabulary), weights kept in fp32. With ``int8`` the IR is post-training quantized by NNCF
(``nncf.quantize``, default preset) on calibration images letterboxed exactly as the runner does. Files written:
``model.xml`` + ``model.bin`` and the sidecar ``model.json`` (the ONNX sidecar plus ``format``, ``precision`` and
``calibration``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.errors import ConfigError, DataError
from rtvp.fileio import atomic_write_text, read_json
from rtvp.imaging import read_image, to_channels

SIDECAR_FORMAT = "rtvp-openvino/1"


def require_openvino() -> Any:
    """Import ``openvino``.

    Raises:
        ConfigError: the optional extra is not installed.
    """
    try:
        import openvino as ov
    except ImportError:
        raise ConfigError("OpenVINO export/inference needs the optional extra: pip install 'rtvp[openvino]'") from None
    return ov


def calibration_images(source: str | Path, split: str = "closed_train", count: int = 32) -> list[Path]:
    """``count`` calibration images, evenly spread over a benchmark split or an image folder/glob.

    Args:
        source: a benchmark folder (``annotations/<split>.json`` inside) or an image folder/glob/file.
        split: the benchmark split (ignored for folders of images).
        count: images wanted (fewer when the source has fewer).

    Raises:
        ConfigError: ``count < 1``, an unknown split, or no image found.
    """
    from rtvp.predict.inputs import iter_sources

    if count < 1:
        raise ConfigError(f"--calib-images {count}: need at least 1 calibration image")
    root = Path(source)
    ann_dir = root / "annotations"
    if ann_dir.is_dir():
        ann = ann_dir / f"{split}.json"
        if not ann.is_file():
            have = sorted(p.stem for p in ann_dir.glob("*.json"))
            raise ConfigError(f"{ann}: no split '{split}' in this benchmark; use --calib-split one of {have}")
        images = read_json(ann, "benchmark annotations", error=ConfigError).get("images", [])
        paths = [root / im["file_name"] for im in images]
    else:
        try:
            paths = iter_sources(source)
        except DataError as e:
            raise ConfigError(f"--calib-data {source}: {e}; give a benchmark folder or a folder of images") from None
    if not paths:
        raise ConfigError(f"--calib-data {source}: no calibration images found (split '{split}')")
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def calibration_batches(paths: Sequence[Path], imgsz: int, channels: int) -> list[np.ndarray]:
    """One letterboxed ``(1, C, S, S)`` float32 input per readable image (the runner's preprocessing).

    Raises:
        ConfigError: none of the images can be read.
    """
    from rtvp.deploy.runtime import to_batch

    out = []
    for p in paths:
        try:
            out.append(to_batch([to_channels(read_image(p, channels=None), channels)], imgsz)[0])
        except DataError:
            continue
    if not out:
        raise ConfigError(f"none of the {len(paths)} calibration images could be read (first: {paths[0]})")
    return out


def quantize_int8(model: Any, batches: Sequence[np.ndarray]) -> Any:
    """NNCF post-training int8 quantization of an OpenVINO model on ``batches`` (``(1, C, S, S)`` each)."""
    try:
        import nncf
    except ImportError:
        raise ConfigError("--int8 needs NNCF, part of the optional extra: pip install 'rtvp[openvino]'") from None
    import logging

    logging.getLogger("nncf").setLevel(logging.WARNING)
    return nncf.quantize(model, nncf.Dataset(list(batches)), subset_size=len(batches))


def int8_check(ov: Any, fp32: Any, int8: Any, batches: Sequence[np.ndarray]) -> dict[str, Any]:
    """Compare the int8 model with fp32 on up to 4 calibration inputs: largest box / score deviation, finiteness.

    Returns:
        ``{"box_max_abs_diff": px, "score_max_abs_diff": float, "score_mean_abs_diff": float, "finite": bool}``.
    """
    core = ov.Core()
    runs = []
    for model in (fp32, int8):
        request = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
        runs.append([[np.asarray(request.infer({0: x})[i]) for i in range(2)] for x in batches[:4]])
    box = max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(*runs, strict=True))
    score = [np.abs(a[1] - b[1]) for a, b in zip(*runs, strict=True)]
    finite = all(np.isfinite(b[0]).all() and np.isfinite(b[1]).all() for b in runs[1])
    return {"box_max_abs_diff": box, "score_max_abs_diff": float(max(s.max() for s in score)),
            "score_mean_abs_diff": float(np.mean([s.mean() for s in score])), "finite": bool(finite)}


def export_openvino(weights: str | Path | dict, out: str | Path, prompts: Sequence[str] | None = None,
                    imgsz: int | None = None, nms: bool = False, conf: float = 0.25, iou: float = 0.7,
                    max_det: int = 300, int8: bool = False, calib: Sequence[Path] = (),
                    calib_source: str = "") -> dict[str, Any]:
    """Export a checkpoint with a fixed vocabulary to OpenVINO IR (``.xml`` + ``.bin``) and write the sidecar.

    Args:
        weights: checkpoint path or dict.
        out: the ``.xml`` file to write.
        prompts: prompts as typed; ``None``: the checkpoint's classes.
        imgsz: input side (multiple of 32; default the checkpoint's).
        nms: also output in-graph NMS ``detections``.
        conf: score threshold (see :func:`rtvp.deploy.export.export_onnx`).
        iou: NMS IoU threshold.
        max_det: detections per image (runner default).
        int8: quantize with NNCF on ``calib``.
        calib: calibration image files (:func:`calibration_images`); required with ``int8``.
        calib_source: where ``calib`` came from, recorded in the sidecar.

    Returns:
        The sidecar dict (also written to ``out`` with suffix ``.json``).

    Raises:
        ConfigError: ``out`` is not ``.xml``, OpenVINO/NNCF missing, ``int8`` without calibration images.
    """
    from rtvp.deploy.export import export_onnx, sidecar_path

    out = Path(out)
    if out.suffix != ".xml":
        raise ConfigError(f"--out {out}: OpenVINO IR is written as a .xml file (weights in .bin next to it)")
    if int8 and not calib:
        raise ConfigError("--int8 needs calibration images: --calib-data BENCH (with --calib-split) or an image folder")
    ov = require_openvino()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".rtvp-ov-", dir=out.parent) as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        side = export_onnx(weights, onnx_path, prompts, imgsz=imgsz, nms=nms, conf=conf, iou=iou, max_det=max_det)
        model = ov.convert_model(str(onnx_path))
        calibration = None
        if int8:
            batches = calibration_batches(calib, side["imgsz"], side["channels"])
            quantized = quantize_int8(model, batches)
            check = int8_check(ov, model, quantized, batches)
            if not check["finite"]:
                raise ConfigError(f"{out}: the int8 model gives NaN/inf outputs on the calibration images (NNCF "
                                  "cannot quantize this model as is); export fp32 (drop --int8)")
            model = quantized
            calibration = {"source": calib_source, "images": len(batches), "method": "nncf.quantize (default preset)",
                           "check_vs_fp32": check}
        staged = Path(tmp) / "ir.xml"
        ov.save_model(model, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(staged, out)
    side.update({"format": SIDECAR_FORMAT, "precision": "int8" if int8 else "fp32", "calibration": calibration,
                 "openvino_version": ov.__version__, "onnx_opset": side.pop("opset")})
    atomic_write_text(sidecar_path(out), json.dumps(side, ensure_ascii=False, indent=1) + "\n")
    return side
