"""What every exported-model runner shares: the sidecar, letterboxing, numpy NMS and the ``Predictor`` contract.

:class:`ExportedPredictor` implements ``set_prompts`` / ``stream`` / ``predict`` over an abstract :meth:`raw`
(``(B, C, S, S)`` float32 in [0, 1] -> the graph's outputs ``boxes (B, A, 4)``, ``scores (B, A, K)`` and, with
in-graph NMS, ``detections (M, 7)``, and for mask models ``mask_coef``/``protos``, assembled into masks by
``rtvp.predict.masks``); :class:`rtvp.deploy.onnx_runner.OnnxPredictor` (onnxruntime) and
:class:`rtvp.deploy.openvino_runner.OpenVINOPredictor` (OpenVINO IR) only open the file and run it. numpy + OpenCV
only: :meth:`ExportedPredictor.predict` imports no torch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.errors import ConfigError, DataError
from rtvp.fileio import read_json
from rtvp.imaging import letterbox, read_image, to_channels, unletterbox_boxes
from rtvp.predict.masks import check_mask_thr, detection_masks
from rtvp.structures import Detections
from rtvp.vocabulary import Resolved

LOGGER = logging.getLogger("rtvp.predict")
Source = str | Path | np.ndarray


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS, same rule as ``torchvision.ops.nms`` (suppress IoU > ``iou``), float32 arithmetic.

    Args:
        boxes: ``(N, 4)`` xyxy.
        scores: ``(N,)``.
        iou: IoU threshold.

    Returns:
        Kept indices, scores descending.
    """
    boxes = boxes.astype(np.float32, copy=False)
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = w * h
        order = rest[inter / (area[i] + area[rest] - inter) <= iou]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Class-aware NMS (boxes of different classes never suppress each other), like ``torchvision.ops.batched_nms``.

    Runs :func:`nms` per class (exact IoUs, no coordinate offsets) and merges the kept indices by score.
    """
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    kept = [np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], iou)]
            for c in np.unique(classes)]
    keep = np.concatenate(kept)
    return keep[np.argsort(-scores[keep], kind="stable")]


def select_numpy(boxes: np.ndarray, scores: np.ndarray, conf: float, iou: float, max_det: int,
                 max_nms: int = 30000) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One image's multi-label threshold + NMS (the predictor's ``select`` in numpy).

    Args:
        boxes: ``(A, 4)`` xyxy letterboxed pixels.
        scores: ``(A, K)``.
        conf: score threshold.
        iou: NMS IoU threshold.
        max_det: detections kept.
        max_nms: candidates entering NMS.

    Returns:
        ``(boxes (N, 4), scores (N,), labels (N,), anchors (N,))``.
    """
    anchor, cls = np.nonzero(scores > conf)
    sc = scores[anchor, cls]
    if sc.size > max_nms:
        top = np.argsort(-sc, kind="stable")[:max_nms]
        anchor, cls, sc = anchor[top], cls[top], sc[top]
    bx = boxes[anchor]
    keep = batched_nms(bx, sc, cls, iou)[:max_det]
    return bx[keep], sc[keep], cls[keep], anchor[keep]


def to_batch(images: Sequence[np.ndarray], imgsz: int) -> tuple[np.ndarray, list[tuple[float, tuple[int, int]]]]:
    """Letterbox ``(H, W, C)`` uint8 images into the graph input.

    Returns:
        ``(batch (B, C, S, S) float32 in [0, 1], [(scale, pad)] per image)``.
    """
    boxed = [letterbox(img, imgsz) for img in images]
    batch = np.stack([b for b, _, _ in boxed]).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(batch), [(s, p) for _, s, p in boxed]


def read_sidecar(path: Path, kind: str) -> dict[str, Any]:
    """The sidecar JSON of an exported ``path`` (same stem, ``.json``), checked for the fields the runners need.

    Raises:
        ConfigError: the model file or its sidecar is missing, or the sidecar lacks a field.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: {kind} file not found")
    side = path.with_suffix(".json")
    meta = read_json(side, "sidecar JSON", fix=f"`rtvp export` writes it next to the {path.suffix}",
                     error=ConfigError)
    missing = [k for k in ("class_names", "imgsz", "channels") if k not in meta]
    if missing:
        raise ConfigError(f"{side}: missing {missing}; re-export the model with `rtvp export`")
    return meta


class ExportedPredictor:
    """Detections from an exported model file (vocabulary fixed at export time); subclasses implement :meth:`raw`.

    Args:
        path: the model file; its sidecar JSON (same stem) must sit next to it.
        kind: what the file is, for messages (``ONNX``, ``OpenVINO IR``).
        conf: score threshold (default: the sidecar's; in-graph NMS has its threshold baked in, it may only be
            raised).
        iou: NMS IoU threshold (default: the sidecar's; in-graph NMS uses the exported one).
        max_det: detections per image (default: the sidecar's).
        batch: images per run.
        mask_thr: mask probability a pixel must exceed (graphs with the mask outputs).

    Attributes:
        sidecar: the sidecar dict; ``arch``, ``imgsz``, ``channels``, ``class_names`` are read from it.
        skipped: ``(source, reason)`` of every unreadable input seen so far.
    """

    device = "cpu"

    def __init__(self, path: str | Path, kind: str, conf: float | None = None, iou: float | None = None,
                 max_det: int | None = None, batch: int = 8, mask_thr: float = 0.5) -> None:
        self.path, self.kind = Path(path), kind
        self.sidecar = read_sidecar(self.path, kind)
        side = self.sidecar
        self.arch = side.get("arch")
        self.class_names: list[str] = list(side["class_names"])
        self.imgsz, self.channels = int(side["imgsz"]), int(side["channels"])
        self.conf = float(side.get("conf", 0.25) if conf is None else conf)
        self.iou = float(side.get("iou", 0.7) if iou is None else iou)
        self.max_det = int(side.get("max_det", 300) if max_det is None else max_det)
        self.batch = int(batch)
        self.mask_thr = check_mask_thr(mask_thr)
        if not (0.0 <= self.conf < 1.0 and 0.0 < self.iou <= 1.0 and self.max_det >= 1 and self.batch >= 1):
            raise ConfigError(f"need 0 <= conf < 1, 0 < iou <= 1, max_det >= 1, batch >= 1; got conf={self.conf}, "
                              f"iou={self.iou}, max_det={self.max_det}, batch={self.batch}")
        texts, canonical = side.get("texts", self.class_names), side.get("canonical", [None] * len(self.class_names))
        self.resolved = [Resolved(p, t, c) for p, t, c in zip(self.class_names, texts, canonical, strict=True)]
        self.output_names = list(side.get("outputs") or ["boxes", "scores"])
        self.in_graph_nms = False  # set by subclasses once the graph's outputs are known
        self.skipped: list[tuple[str, str]] = []

    @property
    def vocabulary(self) -> list[str]:
        """The baked-in class names (prompts as typed at export)."""
        return list(self.class_names)

    @property
    def prompts(self) -> list[str]:
        """The active prompts: always the baked-in ones."""
        return list(self.class_names)

    def raw(self, images: np.ndarray) -> list[np.ndarray]:
        """Run the graph on a letterboxed ``(B, C, S, S)`` float32 batch in [0, 1]; returns its outputs in order."""
        raise NotImplementedError

    def set_prompts(self, prompts: Sequence[str] | None) -> list[Resolved]:
        """Check ``prompts`` against the baked-in vocabulary (``None``: it) and return its resolutions.

        Raises:
            ConfigError: other prompts than the baked-in ones.
        """
        if prompts is not None and list(prompts) != self.class_names:
            raise ConfigError(f"{self.path}: the vocabulary {self.class_names} is baked into this {self.kind} file; "
                              "re-export with `rtvp export --prompts ...` for other prompts")
        return list(self.resolved)

    def _detect(self, outputs: list[np.ndarray], b: int) -> tuple[np.ndarray, ...]:
        if not self.in_graph_nms:
            return select_numpy(outputs[0][b], outputs[1][b], self.conf, self.iou, self.max_det)
        det = outputs[2]
        det = det[(det[:, 0] == b) & (det[:, 5] > self.conf)][: self.max_det]
        anchor = det[:, 7].astype(np.int64) if det.shape[1] > 7 else np.full(len(det), -1, np.int64)
        return det[:, 1:5], det[:, 5], det[:, 6].astype(np.int64), anchor

    def _masks(self, outputs: list[np.ndarray], b: int, anchor: np.ndarray, boxes: np.ndarray,
               scale: float, pad: tuple[int, int], size: tuple[int, int]) -> np.ndarray | None:
        """``(N, h, w)`` bool masks of image ``b``'s detections when the graph has the mask outputs, else None."""
        if "protos" not in self.output_names:
            return None
        coef = outputs[self.output_names.index("mask_coef")][b][anchor]
        return detection_masks(coef, outputs[self.output_names.index("protos")][b], boxes, scale, pad, size,
                               self.mask_thr)

    def _run(self, sources: Sequence[Source]) -> Iterator[tuple[Source, str, np.ndarray, Detections]]:
        """``(source, name, image, detections)`` per readable source, input order."""
        items = list(enumerate(sources))
        for start in range(0, len(items), self.batch):
            read = [(i, src, img) for i, src in items[start : start + self.batch]
                    if (img := self._load(i, src)) is not None]
            if not read:
                continue
            batch, geo = to_batch([img for _, _, img in read], self.imgsz)
            outputs = self.raw(batch)
            for b, ((i, src, img), (scale, pad)) in enumerate(zip(read, geo, strict=True)):
                bx, sc, cls, anchor = self._detect(outputs, b)
                h, w = img.shape[:2]
                xyxy = unletterbox_boxes(bx, scale, pad, w, h)
                dets = Detections(xyxy, sc, cls, list(self.class_names), {"anchor": anchor},
                                  self._masks(outputs, b, anchor, xyxy, scale, pad, (h, w)))
                yield src, _name(i, src), img, dets

    def stream(self, sources: Sequence[Source], prompts: Sequence[str] | None = None,
               save_maps: bool = False) -> Iterator[Any]:
        """Yield a :class:`rtvp.predict.predictor.Prediction` per readable source (no RVP maps in exported files).

        Args:
            sources: image paths or ``(H, W[, C])`` uint8 RGB arrays.
            prompts: must be ``None`` or the baked-in vocabulary.
            save_maps: accepted for the ``Predictor`` contract; exported files carry no maps.
        """
        from rtvp.predict.predictor import Prediction

        self.set_prompts(prompts)
        for src, name, img, dets in self._run(sources):
            yield Prediction(src, name, img, dets, {})

    def predict(self, sources: Sequence[Source], prompts: Sequence[str] | None = None,
                save_maps: bool = False) -> list[Detections]:
        """Detect the baked-in classes; one ``Detections`` per readable source (input order), others skipped.

        Raises:
            ConfigError: ``prompts`` differ from the vocabulary baked into the file.
        """
        self.set_prompts(prompts)
        return [dets for _, _, _, dets in self._run(sources)]

    def _load(self, i: int, src: Source) -> np.ndarray | None:
        try:
            if isinstance(src, np.ndarray):
                if src.dtype != np.uint8 or src.ndim not in (2, 3):
                    raise DataError(f"array input must be (H, W) or (H, W, C) uint8, got {src.dtype} {src.shape}")
                return to_channels(src[:, :, None] if src.ndim == 2 else src, self.channels)
            return to_channels(read_image(src, channels=None), self.channels)
        except DataError as e:
            LOGGER.warning("skipped unreadable image %s", e)
            self.skipped.append((_name(i, src), str(e)))
            return None


def _name(i: int, src: Source) -> str:
    return f"array<{i}>" if isinstance(src, np.ndarray) else str(src)
