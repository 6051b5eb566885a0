"""``OnnxPredictor``: run an ``rtvp export`` ONNX file with onnxruntime; numpy + OpenCV only, no torch at run time.

Same contract as :class:`rtvp.predict.predictor.Predictor` (``predict(sources) -> list[Detections]`` in original
pixels, unreadable images reported and skipped), but the vocabulary is the one baked into the file. Letterboxing,
NMS and the contract live in :mod:`rtvp.deploy.runtime`, shared with the OpenVINO runner.

Examples:
    >>> runner = OnnxPredictor("model.onnx", conf=0.25)  # doctest: +SKIP
    >>> dets = runner.predict([Path("board.jpg")])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rtvp.deploy.runtime import ExportedPredictor, batched_nms, nms, select_numpy
from rtvp.errors import ConfigError

__all__ = ["OnnxPredictor", "batched_nms", "nms", "select_numpy"]


class OnnxPredictor(ExportedPredictor):
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
        mask_thr: mask probability a pixel must exceed (graphs with the mask outputs).
    """

    def __init__(self, path: str | Path, conf: float | None = None, iou: float | None = None,
                 max_det: int | None = None, batch: int = 8, providers: Sequence[str] | None = None,
                 threads: int = 0, mask_thr: float = 0.5) -> None:
        super().__init__(path, "ONNX", conf, iou, max_det, batch, mask_thr)
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - onnxruntime is a dependency
            raise ConfigError("OnnxPredictor needs onnxruntime (pip install onnxruntime)") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ConfigError(f"{self.path}: onnxruntime cannot load it ({str(e).splitlines()[0][:200]})") from None
        graph_outputs = self.output_names[: len(self.session.get_outputs())]
        self.in_graph_nms = bool(self.sidecar.get("nms")) and "detections" in graph_outputs

    def raw(self, images: np.ndarray) -> list[np.ndarray]:
        """Run the graph on a letterboxed ``(B, C, S, S)`` float32 batch in [0, 1]; returns its outputs."""
        return self.session.run(None, {"images": np.ascontiguousarray(images, dtype=np.float32)})
