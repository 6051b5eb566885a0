"""``OpenVINOPredictor``: run an ``rtvp export --format openvino`` IR (fp32 or NNCF int8) with OpenVINO on the CPU.

Same contract as :class:`rtvp.deploy.onnx_runner.OnnxPredictor` (shared in :mod:`rtvp.deploy.runtime`); needs the
optional extra ``rtvp[openvino]``.

Examples:
    >>> runner = OpenVINOPredictor("model.xml", conf=0.25)  # doctest: +SKIP
    >>> dets = runner.predict([Path("board.jpg")])  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtvp.deploy.openvino_export import require_openvino
from rtvp.deploy.runtime import ExportedPredictor
from rtvp.errors import ConfigError

PRECISIONS = ("f32", "bf16")


class OpenVINOPredictor(ExportedPredictor):
    """Detections from an exported OpenVINO IR (vocabulary fixed at export time).

    Args:
        path: the ``.xml`` file (``.bin`` and the sidecar ``.json`` next to it).
        conf: score threshold (default: the sidecar's).
        iou: NMS IoU threshold (default: the sidecar's).
        max_det: detections per image (default: the sidecar's).
        batch: images per run.
        threads: inference threads (0: OpenVINO's default).
        precision: ``f32`` (default: exact fp32 layers, the int8 layers of a quantized IR stay int8) or ``bf16``
            (OpenVINO's ``INFERENCE_PRECISION_HINT``; fast only on CPUs with native bf16).
        device: OpenVINO device name.
        mask_thr: mask probability a pixel must exceed (graphs with the mask outputs).
    """

    def __init__(self, path: str | Path, conf: float | None = None, iou: float | None = None,
                 max_det: int | None = None, batch: int = 8, threads: int = 0, precision: str = "f32",
                 device: str = "CPU", mask_thr: float = 0.5) -> None:
        super().__init__(path, "OpenVINO IR", conf, iou, max_det, batch, mask_thr)
        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r}: use one of {PRECISIONS}")
        ov = require_openvino()
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(self.path)), device, config)
        except Exception as e:  # OpenVINO raises RuntimeError subclasses with long traces
            raise ConfigError(f"{self.path}: OpenVINO cannot load it ({str(e).splitlines()[0][:200]}); "
                              "re-export with `rtvp export --format openvino`") from None
        self.request = self.compiled.create_infer_request()
        self.precision = str(self.sidecar.get("precision", "fp32"))
        graph_outputs = self.output_names[: len(self.compiled.outputs)]
        self.in_graph_nms = bool(self.sidecar.get("nms")) and "detections" in graph_outputs

    def raw(self, images: np.ndarray) -> list[np.ndarray]:
        """Run the IR on a letterboxed ``(B, C, S, S)`` float32 batch in [0, 1]; returns its outputs in order."""
        result = self.request.infer({0: np.ascontiguousarray(images, dtype=np.float32)})
        return [np.asarray(result[o]) for o in self.compiled.outputs]
