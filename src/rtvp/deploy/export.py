"""ONNX export with the vocabulary baked in (``rtvp export --format onnx``).

The exported graph takes only images ``(B, C, S, S)`` float32 in [0, 1] (letterboxed, dynamic batch ``B``); the K
prompt embeddings are a constant inside it (:class:`~rtvp.predict.loading.PromptedModel` holds them as a buffer).
Outputs:

- ``boxes`` ``(B, A, 4)`` xyxy in letterboxed pixels and ``scores`` ``(B, A, K)`` sigmoid scores (raw outputs;
  NMS runs outside, in :class:`rtvp.deploy.onnx_runner.OnnxPredictor`), and with ``nms=True`` also
- ``detections`` ``(M, 7)`` rows ``[batch, x1, y1, x2, y2, score, class]`` after the score threshold and
  class-aware NMS inside the graph (``torchvision.ops.nms`` -> ONNX ``NonMaxSuppression``), scores descending;
  the runner keeps ``max_det`` per image;
- for a model with the mask branch (``model.masks``) also ``mask_coef`` ``(B, A, nm)`` and ``protos``
  ``(B, nm, S / 4, S / 4)`` (last), and the in-graph ``detections`` rows get an 8th column, the anchor index, so
  the runner can assemble each detection's mask (``rtvp.predict.masks``).

A sidecar JSON next to the file (``model.onnx`` -> ``model.json``) records class names, the encoded texts, image
size, channels and the thresholds. Export uses the dynamo exporter (``torch.export``); attention runs with the math
SDPA kernel while tracing (the fused CPU kernel's decomposition breaks the TinyViT reshape).
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rtvp import __version__
from rtvp.errors import ConfigError
from rtvp.fileio import atomic_write_bytes, atomic_write_text
from rtvp.models.decode import decode_boxes
from rtvp.predict.loading import PromptedModel, bind_prompts, build_encoder, load_model

SIDECAR_FORMAT = "rtvp-onnx/1"
DEFAULT_OPSET = 18


class ExportModule(nn.Module):
    """``images -> (boxes, scores[, detections])``: decoded raw outputs of a prompted model (see module docstring).

    Args:
        prompted: model with its vocabulary bound.
        nms: add in-graph score threshold + class-aware NMS.
        conf: score threshold of the in-graph NMS.
        iou: IoU threshold of the in-graph NMS.
    """

    def __init__(self, prompted: PromptedModel, nms: bool = False, conf: float = 0.25, iou: float = 0.7) -> None:
        super().__init__()
        self.prompted, self.nms, self.conf, self.iou = prompted, nms, float(conf), float(iou)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, C, S, S) float in [0, 1] -> boxes (B, A, 4), scores (B, A, K)[, detections (M, 7)]."""
        out = self.prompted(images)
        boxes = decode_boxes(out.box_dist, out.anchors, out.strides)
        scores = out.logits.sigmoid()
        masks = () if out.mask_coef is None else (out.mask_coef, out.protos)
        if not self.nms:
            return boxes, scores, *masks
        return boxes, scores, self._nms(boxes, scores, bool(masks)), *masks

    def _nms(self, boxes: torch.Tensor, scores: torch.Tensor, with_anchor: bool = False) -> torch.Tensor:
        """Threshold + NMS over all (image, anchor, class) candidates; classes and images kept apart by offsets."""
        from torchvision.ops import nms

        b, a, k = scores.shape
        flat = scores.reshape(-1)
        idx = torch.nonzero(flat > self.conf).squeeze(1)  # (N,) over b * A * K
        sc = flat[idx]
        img, rest = idx // (a * k), idx % (a * k)
        anchor, cls = rest // k, rest % k
        bx = boxes[img, anchor]
        group = (img * k + cls).to(bx.dtype)
        offset = group[:, None] * (boxes.amax(dim=(0, 1, 2)).clamp(min=0) + 1.0)  # batched_nms coordinate trick
        keep = nms(bx + offset, sc, self.iou)
        cols = [img[keep, None].to(bx.dtype), bx[keep], sc[keep, None], cls[keep, None].to(bx.dtype)]
        if with_anchor:
            cols.append(anchor[keep, None].to(bx.dtype))
        return torch.cat(cols, 1)


def sidecar_path(onnx_path: Path) -> Path:
    """``model.onnx`` -> ``model.json``."""
    return Path(onnx_path).with_suffix(".json")


def _trace_context() -> contextlib.AbstractContextManager:
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - older torch
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


def export_module(module: nn.Module, example: torch.Tensor, out: Path, opset: int | None = None,
                  output_names: Sequence[str] = ("boxes", "scores")) -> int:
    """Export ``module(images)`` to ONNX with a dynamic batch axis; returns the file's opset.

    Raises:
        ConfigError: the exporter could not reach the requested opset.
    """
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), _trace_context(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example,), None, input_names=["images"], output_names=list(output_names),
                                    dynamic_shapes=({0: batch},), opset_version=opset, verbose=False)
    proto = program.model_proto
    got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and got != opset:
        raise ConfigError(f"the ONNX exporter could not convert this model to opset {opset} (it produced opset {got});"
                          f" use --opset {DEFAULT_OPSET} or higher")
    atomic_write_bytes(out, proto.SerializeToString())
    return int(got or 0)


def export_onnx(weights: str | Path | dict, out: str | Path, prompts: Sequence[str] | None = None,
                imgsz: int | None = None, nms: bool = False, opset: int | None = DEFAULT_OPSET, conf: float = 0.25,
                iou: float = 0.7, max_det: int = 300, device: str = "cpu") -> dict[str, Any]:
    """Export a checkpoint with a fixed vocabulary to ONNX and write the sidecar JSON.

    Args:
        weights: checkpoint path or dict.
        out: the ``.onnx`` file to write.
        prompts: prompts as typed (resolved through the controlled vocabulary); ``None``: the checkpoint's classes.
        imgsz: input side (multiple of 32; default the checkpoint's training size).
        nms: also output in-graph NMS ``detections``.
        opset: ONNX opset (default 18, the exporter's native one: no version conversion; ``None``: the exporter's
            default). Lower opsets fail: the converter cannot rewrite this graph's axes inputs.
        conf: score threshold (baked into the graph with ``nms``; the runner's default otherwise).
        iou: NMS IoU threshold (same).
        max_det: detections per image (runner default).
        device: device used while tracing.

    Returns:
        The sidecar dict (also written to :func:`sidecar_path`).
    """
    out = Path(out)
    model, meta = load_model(weights, device)
    size = int(imgsz or meta.imgsz)
    if size < 32 or size % 32:
        raise ConfigError(f"imgsz={size} must be a positive multiple of 32 (the largest stride)")
    encoder_cache: list[Any] = []

    def encoder() -> Any:
        if not encoder_cache:
            encoder_cache.append(build_encoder(meta, device))
        return encoder_cache[0]

    prompted, resolved = bind_prompts(model, meta, prompts, encoder)
    module = ExportModule(prompted.eval(), nms, conf, iou).eval()
    example = torch.rand(2, meta.in_channels, size, size, device=device)
    t0 = time.perf_counter()
    names = ("boxes", "scores", "detections") if nms else ("boxes", "scores")
    if getattr(model, "seg", None) is not None:
        names = (*names, "mask_coef", "protos")
    got = export_module(module, example, out, opset, names)
    sidecar = {
        "format": SIDECAR_FORMAT, "rtvp_version": __version__, "checkpoint": meta.source, "arch": meta.arch,
        "class_names": [r.prompt for r in resolved], "texts": [r.text for r in resolved],
        "canonical": [r.canonical for r in resolved], "imgsz": size, "channels": meta.in_channels,
        "input": {"name": "images", "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0],
                  "letterbox": {"centred": True, "pad_value": 114}},
        "outputs": list(names), "masks": "protos" in names, "nms": bool(nms), "conf": conf, "iou": iou,
        "max_det": max_det, "opset": got,
        "export_seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_text(sidecar_path(out), json.dumps(sidecar, ensure_ascii=False, indent=1) + "\n")
    return sidecar
