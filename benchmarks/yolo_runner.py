"""Ultralytics YOLOv8 as an external baseline tool. Runs ONLY inside ``benchmarks/.venv-yolo`` (see ``_yolo.py``).

rtvp never imports Ultralytics (AGPL-3.0); this file only calls its public Python API in a separate interpreter and
exchanges JSON files with the benchmark scripts. Usage: ``.venv-yolo/bin/python yolo_runner.py COMMAND SPEC.json``,
the spec being a JSON object; the result is written (atomically) to ``spec["out"]``. Commands and their specs:

- ``train``: data (data.yaml), model (``yolov8n.yaml``, or ``yolov8n-seg.yaml`` on a ``yolo-seg`` export), epochs,
  imgsz, batch, workers, threads, project, name;
- ``predict``: weights, images (paths), imgsz, threads, [conf 0.001, iou 0.7, max_det 300, batch 16, masks false:
  with ``masks`` each detection also gets its mask at image resolution as COCO RLE];
- ``latency``: model, imgsz, batch, warmup, repeats, threads, [fuse, half (fp16 autocast), device];
- ``cost``: model, imgsz.

Offline by construction: ``YOLO_OFFLINE=1`` (set by the caller), models built from the ``.yaml`` (no ``.pt``
download), ``amp=False`` (no AMP check, which would fetch a ``.pt``), ``plots=False``; the caller also places a local
font as ``Arial.ttf`` in the Ultralytics config dir so the dataset check does not try to download one.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    """Peak resident set of this process (``VmHWM``; unlike ``ru_maxrss`` it is not inherited across fork/exec)."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _threads(n: int) -> None:
    """Use ``n`` torch threads (Ultralytics would reset CPU training to ``cpu_count - 1``)."""
    import torch
    from ultralytics.utils import torch_utils

    torch.set_num_threads(n)
    torch_utils.NUM_THREADS = n


def _write(spec: dict[str, Any], result: dict[str, Any]) -> None:
    out = Path(spec["out"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    os.replace(tmp, out)


def _finished(last: Path) -> bool:
    """Ultralytics strips the optimizer from ``last.pt`` when a run completes."""
    import torch

    return torch.load(last, map_location="cpu", weights_only=False).get("optimizer") is None


def train(spec: dict[str, Any]) -> dict[str, Any]:
    """Train from scratch (or resume ``last.pt``), then score ``last.pt`` with Ultralytics' own validator."""
    import ultralytics
    from ultralytics import YOLO

    _threads(spec["threads"])
    save_dir = Path(spec["project"]) / spec["name"]
    last = save_dir / "weights" / "last.pt"
    timing = save_dir / "rtvp_timing.json"  # training wall time, kept for reruns that reuse the finished run
    before = json.loads(timing.read_text(encoding="utf-8"))["wall_s"] if timing.is_file() else 0.0
    t0 = time.perf_counter()
    common = {"device": spec.get("device", "cpu"), "plots": False, "amp": False, "verbose": False}
    if last.is_file() and _finished(last):
        resumed = None  # trained by an earlier call (its wall time is in rtvp_timing.json)
    elif last.is_file():
        YOLO(str(last)).train(resume=True, **common)
        resumed = True
    else:
        YOLO(spec["model"]).train(data=spec["data"], epochs=spec["epochs"], imgsz=spec["imgsz"], batch=spec["batch"],
                                  workers=spec["workers"], project=spec["project"], name=spec["name"], exist_ok=True,
                                  pretrained=False, seed=spec.get("seed", 0), deterministic=True, val=False, **common)
        resumed = False
    wall = before + (time.perf_counter() - t0 if resumed is not None else 0.0)
    timing.write_text(json.dumps({"wall_s": wall}), encoding="utf-8")
    metrics = YOLO(str(last)).val(data=spec["data"], imgsz=spec["imgsz"], batch=spec["batch"], conf=0.001, iou=0.7,
                                  plots=False, device=common["device"], verbose=False, workers=0,
                                  project=spec["project"], name=spec["name"] + "-val", exist_ok=True)
    own = {"mAP50-95": float(metrics.box.map), "mAP50": float(metrics.box.map50)}
    if getattr(metrics, "seg", None) is not None:  # a segmentation model
        own.update({"mask mAP50-95": float(metrics.seg.map), "mask mAP50": float(metrics.seg.map50)})
    return {"weights": str(last), "wall_s": round(wall, 1), "resumed": resumed, "ultralytics": ultralytics.__version__,
            "own_val": own}


def _rles(result: Any) -> list[dict[str, Any]]:
    """COCO RLE of each detection's mask at image resolution (``retina_masks``), via pycocotools."""
    import numpy as np
    from pycocotools import mask as mask_utils

    if result.masks is None:
        return []
    masks = result.masks.data.cpu().numpy() > 0.5
    out = []
    for m in masks:
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        out.append({"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")})
    return out


def predict(spec: dict[str, Any]) -> dict[str, Any]:
    """Detections for a list of images, in input order (xyxy original pixels, score, 0-based class)."""
    from ultralytics import YOLO

    _threads(spec["threads"])
    model = YOLO(spec["weights"])
    images, batch, out = spec["images"], spec.get("batch", 16), []
    masks = spec.get("masks", False)
    t0 = time.perf_counter()
    for i in range(0, len(images), batch):
        for r in model.predict(images[i:i + batch], imgsz=spec["imgsz"], conf=spec.get("conf", 0.001),
                               iou=spec.get("iou", 0.7), max_det=spec.get("max_det", 300), retina_masks=masks,
                               device=spec.get("device", "cpu"), verbose=False, save=False):
            b = r.boxes
            out.append({"xyxy": b.xyxy.cpu().numpy().round(3).tolist(), "score": b.conf.cpu().numpy().round(5).tolist(),
                        "cls": b.cls.cpu().numpy().astype(int).tolist(), **({"rle": _rles(r)} if masks else {})})
    return {"detections": out, "seconds": round(time.perf_counter() - t0, 2)}


def _model(name: str, fuse: bool) -> Any:
    import torch
    from ultralytics import YOLO

    net = YOLO(name).model.eval()
    if fuse:
        net = net.fuse(verbose=False)
    for p in net.parameters():
        p.requires_grad_(False)
    return net, torch


def latency(spec: dict[str, Any]) -> dict[str, Any]:
    """Median forward time (ms/image) of the bare network (no pre/post-processing, no NMS), plus peak RSS."""
    _threads(spec["threads"])
    base_rss = peak_rss_mb()
    net, torch = _model(spec["model"], spec.get("fuse", False))
    dev = torch.device(spec.get("device", "cpu"))
    net = net.to(dev)
    x = torch.rand(spec["batch"], 3, spec["imgsz"], spec["imgsz"], device=dev)
    times = []
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.float16, enabled=spec.get("half", False)):
        for i in range(spec["warmup"] + spec["repeats"]):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            net(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= spec["warmup"]:
                times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"ms_per_image": 1000 * med / spec["batch"], "images_per_s": spec["batch"] / med,
            "peak_rss_mb": peak_rss_mb(),
            "import_rss_mb": base_rss, "threads": torch.get_num_threads()}


def cost(spec: dict[str, Any]) -> dict[str, Any]:
    """Parameters and GFLOPs (``torch.utils.flop_counter``: 2 FLOPs per multiply-add, as rtvp's ``cost.py``)."""
    from torch.utils.flop_counter import FlopCounterMode

    net, torch = _model(spec["model"], False)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros(1, 3, spec["imgsz"], spec["imgsz"]))
    return {"params_M": sum(p.numel() for p in net.parameters()) / 1e6, "gflops": counter.get_total_flops() / 1e9}


if __name__ == "__main__":
    command, spec_path = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    result = {"train": train, "predict": predict, "latency": latency, "cost": cost}[command](spec)
    _write(spec, result)
