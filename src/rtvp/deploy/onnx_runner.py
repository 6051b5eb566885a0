"""``OnnxPredictor``: run an ``rtvp export`` ONNX file with onnxruntime; numpy + OpenCV only, no torch at run time.

Same contract as :class:`rtvp.predict.predictor.Predictor` (``predict(sources) -> list[Detections]`` in original
pixels, unreadable images reported and skipped), but the vocabulary is the one baked into the file.

Examples:
    >>> runner = OnnxPredictor("model.onnx", conf=0.25)  # doctest: +SKIP
    >>> dets = runner.predict([Path("board.jpg")])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.errors import ConfigError, DataError
from rtvp.fileio import read_json
from rtvp.imaging import letterbox, read_image, to_channels, unletterbox_boxes
from rtvp.structures import Detections

LOGGER = logging.getLogger("rtvp.predict")


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


class OnnxPredictor:
    """Detections from an exported ONNX file (vocabulary fixed at export time).

    Args:
        path: the ``.onnx`` file; its sidecar JSON (same stem) must sit next to it.
        conf: score threshold (default: the sidecar's; ignored for in-graph NMS, whose threshold is baked in,
            except that it may only be raised).
        iou: NMS IoU threshold (default: the sidecar's; in-graph NMS uses the exported one).
        max_det: detections per image (default: the sidecar's).
        batch: images per run.
        providers: onnxruntime execution providers (default CPU).
        threads: intra-op threads (0: onnxruntime's default).
    """

    def __init__(self, path: str | Path, conf: float | None = None, iou: float | None = None,
                 max_det: int | None = None, batch: int = 8, providers: Sequence[str] | None = None,
                 threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - onnxruntime is a dependency
            raise ConfigError("OnnxPredictor needs onnxruntime (pip install onnxruntime)") from None
        self.path = Path(path)
        self.meta = _read_sidecar(self.path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=list(providers or
                                                                                        ["CPUExecutionProvider"]))
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ConfigError(f"{self.path}: onnxruntime cannot load it ({str(e).splitlines()[0][:200]})") from None
        self.class_names: list[str] = list(self.meta["class_names"])
        self.imgsz, self.channels = int(self.meta["imgsz"]), int(self.meta["channels"])
        self.conf = float(self.meta.get("conf", 0.25) if conf is None else conf)
        self.iou = float(self.meta.get("iou", 0.7) if iou is None else iou)
        self.max_det = int(self.meta.get("max_det", 300) if max_det is None else max_det)
        self.batch = max(1, int(batch))
        self.in_graph_nms = bool(self.meta.get("nms")) and len(self.session.get_outputs()) == 3
        self.skipped: list[tuple[str, str]] = []

    @property
    def vocabulary(self) -> list[str]:
        """The baked-in class names (prompts as typed at export)."""
        return list(self.class_names)

    def raw(self, images: np.ndarray) -> list[np.ndarray]:
        """Run the graph on a letterboxed ``(B, C, S, S)`` float32 batch in [0, 1]; returns its outputs."""
        return self.session.run(None, {"images": np.ascontiguousarray(images, dtype=np.float32)})

    def _detect(self, outputs: list[np.ndarray], b: int) -> tuple[np.ndarray, ...]:
        if not self.in_graph_nms:
            return select_numpy(outputs[0][b], outputs[1][b], self.conf, self.iou, self.max_det)
        det = outputs[2]
        det = det[(det[:, 0] == b) & (det[:, 5] > self.conf)][: self.max_det]
        return det[:, 1:5], det[:, 5], det[:, 6].astype(np.int64), np.full(len(det), -1, np.int64)

    def predict(self, sources: Sequence[str | Path | np.ndarray], prompts: Sequence[str] | None = None
                ) -> list[Detections]:
        """Detect the baked-in classes; one ``Detections`` per readable source (input order), others skipped.

        Raises:
            ConfigError: ``prompts`` differ from the vocabulary baked into the file.
        """
        if prompts is not None and list(prompts) != self.class_names:
            raise ConfigError(f"{self.path}: the vocabulary {self.class_names} is baked into this ONNX file; "
                              "re-export with `rtvp export --prompts ...` for other prompts")
        results: list[Detections] = []
        items = list(enumerate(sources))
        for start in range(0, len(items), self.batch):
            read = [(i, img) for i, src in items[start : start + self.batch] if (img := self._load(i, src)) is not None]
            if not read:
                continue
            boxed = [letterbox(img, self.imgsz) for _, img in read]
            batch = np.stack([bi for bi, _, _ in boxed]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
            outputs = self.raw(batch)
            for b, ((_, img), (_, scale, pad)) in enumerate(zip(read, boxed, strict=True)):
                bx, sc, cls, anchor = self._detect(outputs, b)
                h, w = img.shape[:2]
                xyxy = unletterbox_boxes(bx, scale, pad, w, h)
                results.append(Detections(xyxy, sc, cls, list(self.class_names), {"anchor": anchor}))
        return results

    def _load(self, i: int, src: str | Path | np.ndarray) -> np.ndarray | None:
        try:
            if isinstance(src, np.ndarray):
                if src.dtype != np.uint8 or src.ndim not in (2, 3):
                    raise DataError(f"array input must be (H, W) or (H, W, C) uint8, got {src.dtype} {src.shape}")
                return to_channels(src[:, :, None] if src.ndim == 2 else src, self.channels)
            return to_channels(read_image(src, channels=None), self.channels)
        except DataError as e:
            name = f"array<{i}>" if isinstance(src, np.ndarray) else str(src)
            LOGGER.warning("skipped unreadable image %s", e)
            self.skipped.append((name, str(e)))
            return None


def _read_sidecar(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    if not path.is_file():
        raise ConfigError(f"{path}: ONNX file not found")
    meta = read_json(side, "sidecar JSON", fix="`rtvp export` writes it next to the .onnx", error=ConfigError)
    missing = [k for k in ("class_names", "imgsz", "channels") if k not in meta]
    if missing:
        raise ConfigError(f"{side}: missing {missing}; re-export the model with `rtvp export`")
    return meta
