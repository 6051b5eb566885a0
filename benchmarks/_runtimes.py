"""Deployment runtimes for ``cost.py``'s latency table: PyTorch bf16 autocast, ONNX Runtime, OpenVINO fp32 / bf16 /
NNCF int8, on the same random-weight models as the PyTorch fp32 rows.

One worker process per (model, size) exports the model once (``rtvp.deploy.export.ExportModule``: the bare network
plus box decoding and the score sigmoid, vocabulary baked in; no letterbox, no NMS) and times every runtime on the
same random input, batch sizes and thread count as the PyTorch rows. Peak RSS is that process's (all runtimes
together), so it is not reported per runtime.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNTIMES = ("torch-fused", "torch-bf16", "onnxruntime", "openvino", "openvino-bf16", "openvino-int8")
LABELS = {"torch-fused": "PyTorch fused fp32",
          "torch-bf16": "PyTorch bf16 autocast", "onnxruntime": "ONNX Runtime fp32", "openvino": "OpenVINO fp32",
          "openvino-bf16": "OpenVINO bf16", "openvino-int8": "OpenVINO int8"}
TEXT_DIM = 384


def native_bf16() -> list[str]:
    """CPU flags that give native bf16 math (``avx512_bf16``, ``amx_bf16``); empty when none (or no oneDNN)."""
    import torch

    from rtvp.device import cpu_bf16_flags

    return cpu_bf16_flags() if torch.backends.mkldnn.is_available() else []


def timed(fn: Callable[[Any], Any], inputs: dict[int, Any], warmup: int, repeats: int) -> dict[str, Any]:
    """Median ms/image and images/s of ``fn(x)`` per batch size (``inputs``: batch -> input)."""
    out = {}
    for batch, x in inputs.items():
        times = []
        for i in range(warmup + repeats):
            t = time.perf_counter()
            fn(x)
            if i >= warmup:
                times.append(time.perf_counter() - t)
        med = statistics.median(times)
        out[str(batch)] = {"ms_per_image": 1000 * med / batch, "images_per_s": batch / med}
    return out


def prompted_module(model: Any, name: str, prompts: int) -> Any:
    """``ExportModule`` of ``model`` with ``prompts`` random text embeddings (an expert: one class per prompt)."""
    import torch

    from rtvp.deploy.export import ExportModule
    from rtvp.predict.loading import PromptedModel

    if name.startswith("expert"):
        prompted = PromptedModel(model, groups=[[k] for k in range(prompts)])
    else:
        prompted = PromptedModel(model, text=torch.nn.functional.normalize(torch.randn(prompts, TEXT_DIM), dim=-1))
    return ExportModule(prompted.eval()).eval()


def openvino_model(onnx_path: Path, int8: bool, calib: Any) -> Any:
    """OpenVINO model converted from ONNX, NNCF-quantized on ``calib`` (a list of inputs) when ``int8``."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    if int8:
        from rtvp.deploy.openvino_export import quantize_int8

        model = quantize_int8(model, calib)
    return model


def runtime_latency(spec: dict[str, Any], build: Callable[[str, int], Any]) -> dict[str, Any]:
    """Latency of ``spec["model"]`` through each runtime of ``spec["runtimes"]`` (worker side)."""
    import numpy as np
    import onnxruntime as ort
    import openvino as ov
    import torch

    from rtvp.deploy.export import export_module

    threads, name = spec["threads"], spec["model"]
    torch.set_num_threads(threads)
    model = build(name, spec["prompts"]).eval()
    text = None if name.startswith("expert") else torch.nn.functional.normalize(
        torch.randn(spec["prompts"], TEXT_DIM), dim=-1)
    rng = np.random.default_rng(0)
    xs = {b: rng.random((b, 3, spec["imgsz"], spec["imgsz"]), dtype=np.float32) for b in spec["batches"]}
    args = (spec["warmup"], spec["repeats"])
    out: dict[str, Any] = {}
    wanted = spec["runtimes"]
    if "torch-fused" in wanted:  # the lean inference form Predictor and rtvp val use: BatchNorm folded
        import copy

        from rtvp.models.fuse import fuse_conv_bn

        fused = copy.deepcopy(model)
        fuse_conv_bn(fused)
        tx = {b: torch.from_numpy(x) for b, x in xs.items()}
        with torch.inference_mode():
            out["torch-fused"] = timed(lambda x: fused(x) if text is None else fused(x, text), tx, *args)
    if "torch-bf16" in wanted and native_bf16():
        tx = {b: torch.from_numpy(x) for b, x in xs.items()}
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            out["torch-bf16"] = timed(lambda x: model(x) if text is None else model(x, text), tx, *args)
    with tempfile.TemporaryDirectory(prefix="rtvp-rt-") as tmp:
        onnx_path = Path(tmp) / "m.onnx"
        t = time.perf_counter()
        export_module(prompted_module(model, name, spec["prompts"]), torch.rand(2, 3, spec["imgsz"], spec["imgsz"]),
                      onnx_path)
        export_s = time.perf_counter() - t
        if "onnxruntime" in wanted:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":  # ORT's spinning follows rtvp's rule
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            out["onnxruntime"] = timed(lambda x: sess.run(None, {"images": x}), xs, *args)
        core = ov.Core()
        for rt, precision in (("openvino", "f32"), ("openvino-bf16", "bf16"), ("openvino-int8", "f32")):
            if rt not in wanted or (precision == "bf16" and not native_bf16()):
                continue
            calib = [rng.random((1, 3, spec["imgsz"], spec["imgsz"]), dtype=np.float32) for _ in range(8)]
            compiled = core.compile_model(openvino_model(onnx_path, rt.endswith("int8"), calib), "CPU",
                                          {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                                           "INFERENCE_PRECISION_HINT": precision})
            request = compiled.create_infer_request()
            out[rt] = timed(lambda x, r=request: r.infer({0: x}), xs, *args)
    import cost

    return {"runtimes": out, "export_s": export_s, "threads": threads, "load": cost.load1(),
            "peak_rss_mb": cost.peak_rss_mb(), "bf16_flags": native_bf16()}


def runtime_rows(res: dict[str, Any], dev: str, batches: list[int]) -> list[list[Any]]:
    """Latency-table rows ``[<model> (<runtime>), imgsz, ms/img per batch..., img/s, RSS, threads, load]``."""
    rows = []
    for key, v in res.items():
        if not (key.startswith("rt-") and key.endswith(f"-{dev}")):
            continue
        name, imgsz = key.removeprefix("rt-").removesuffix(f"-{dev}").split("@")
        for rt, bs in v["runtimes"].items():
            rows.append([f"{name} ({LABELS[rt]})", int(imgsz),
                         *(bs[str(b)]["ms_per_image"] if str(b) in bs else None for b in batches),
                         bs[str(batches[-1])]["images_per_s"] if str(batches[-1]) in bs else None, None,
                         v["threads"], v.get("load")])
    return rows


def best_ms(res: dict[str, Any], model: str, imgsz: int, dev: str = "cpu") -> tuple[float, str] | None:
    """Fastest batch-1 ms/img of ``model`` over PyTorch fp32 and every runtime row, with its label."""
    options = []
    lat = res.get(f"lat-{model}@{imgsz}-{dev}")
    if lat and "1" in lat["batches"]:
        options.append((lat["batches"]["1"]["ms_per_image"], "PyTorch fp32"))
    for rt, bs in (res.get(f"rt-{model}@{imgsz}-{dev}") or {}).get("runtimes", {}).items():
        if "1" in bs:
            options.append((bs["1"]["ms_per_image"], LABELS[rt]))
    return min(options) if options else None


def goal_notes(res: dict[str, Any], imgsz: int = 320) -> list[str]:
    """The issue-14 targets, read off this run: rtvpnet-n <= 2x YOLOv8n (fused PyTorch); expert-n on OpenVINO faster
    than YOLOv8n on PyTorch (both at batch 1, ``imgsz``)."""
    yolo = res.get(f"lat-yolov8n-fused@{imgsz}-cpu")
    if not yolo or "1" not in yolo["batches"]:
        return []
    ref = yolo["batches"]["1"]["ms_per_image"]
    notes = []
    best = best_ms(res, "rtvpnet-n", imgsz)
    if best:
        notes.append(f"Target rtvpnet-n @{imgsz} on its best runtime <= 2x YOLOv8n (Ultralytics, fused PyTorch, "
                     f"{ref:.1f} ms): {best[0]:.1f} ms via {best[1]} = {best[0] / ref:.2f}x -> "
                     f"{'met' if best[0] <= 2 * ref else 'not met'}.")
    ov = [(bs["1"]["ms_per_image"], LABELS[rt]) for rt, bs in
          (res.get(f"rt-expert-n@{imgsz}-cpu") or {}).get("runtimes", {}).items() if rt.startswith("openvino")]
    if ov:
        ms, label = min(ov)
        notes.append(f"Target expert-n on OpenVINO faster than YOLOv8n on PyTorch (fused, {ref:.1f} ms): {ms:.1f} ms "
                     f"via {label} = {ms / ref:.2f}x -> {'met' if ms < ref else 'not met'}.")
    return notes
