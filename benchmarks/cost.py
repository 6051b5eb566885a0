"""Cost (paper Table III/V "Param"/"GFLOPs" columns, DESIGN §5): params and GFLOPs per component, latency, training
throughput and peak memory of RTVPNet vs its text-only variant vs the expert vs Ultralytics YOLOv8.

1. Params and GFLOPs per component at 320 and 640 px (``rtvp.models.cost``: ``torch.utils.flop_counter``, 2 FLOPs
   per multiply-add, K prompts) for n / s / l, and n with the mask branch (``-seg``, component ``mask``).
2. CPU latency: median ms/image of the bare network forward (no letterbox, no NMS) at batch 1 and 8 after warm-up,
   for ``rtvpnet``, ``textonly`` and ``expert`` (our YOLOv8-architecture detector) n / s and the n ``-seg`` models,
   and Ultralytics YOLOv8n/s/n-seg measured the same way in a subprocess of the ``.venv-yolo`` environment (rtvp
   never imports it). Each (model, size) runs in its own fresh process so peak RSS is its own.
3. Training throughput: images/s of full optimisation steps (forward, DetectionCriterion, backward, AdamW) on random
   data, SAM trainable (random init, what our runs without ``mobile_sam.pt`` do) and frozen (with official weights).
4. GPU (only when CUDA is available): fp16 autocast latency and training throughput.
5. Deployment runtimes (``_runtimes.py``): PyTorch bf16 autocast (CPUs with native bf16), ONNX Runtime, OpenVINO
   fp32 / bf16 / NNCF int8 rows in the CPU latency table, for the ``--runtime-models`` at the latency sizes.

    python benchmarks/cost.py            # full
    python benchmarks/cost.py --quick    # n only, small sizes, 2 repeats
    python benchmarks/cost.py --sections latency runtimes --lat-models rtvpnet-n textonly-n expert-n --batches 1 \
        --tag runtimes                   # the deployment latency table only
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import BenchRun, Cell, Table, build_parser, parse_args
from _runtimes import RUNTIMES, goal_notes, runtime_rows
from yolo_runner import peak_rss_mb  # the same VmHWM reading in both environments

from rtvp.models.cost import COMPONENTS

TEXT_DIM = 384  # all-MiniLM-L6-v2
SECTIONS = ("static", "latency", "runtimes", "train")
RUNTIME_NOTE = (" Runtime rows (PyTorch fused fp32 = BatchNorm folded as Predictor and rtvp val run it, PyTorch bf16 "
                "autocast, ONNX Runtime, OpenVINO fp32/bf16/int8; _runtimes.py): "
                "the exported graph (network + box decoding + score sigmoid, vocabulary baked in), same threads and "
                "input; OpenVINO int8 = NNCF post-training quantization calibrated on 8 random images (latency only; "
                "accuracy: benchmarks/results/deploy_ap); bf16 rows only on CPUs with native bf16 (avx512_bf16/"
                "amx_bf16); peak RSS of those workers covers all runtimes, so it is left blank.")


def load1() -> float:
    """1-minute load average (other processes' CPU use makes timings noisy; reported next to each timing)."""
    import os

    return round(os.getloadavg()[0], 2)


PAPER = {"rtvpnet-s": "76 M / 17 GFLOPs (CLIP text encoder incl.)", "rtvpnet-l": "110 M / 89 GFLOPs"}


# ---------------------------------------------------------------------------------------------------- worker side
def build(name: str, prompts: int, freeze_sam: bool = True) -> Any:
    """``rtvpnet-<s>`` / ``textonly-<s>`` / ``expert-<s>`` (``-seg``: with the mask branch), random weights."""
    import warnings

    from rtvp.models import ExpertDetector, ModelConfig, build_model
    from rtvp.models.sam import MobileSAMEncoder

    kind, scale, *seg = name.split("-")
    if kind == "expert":
        return ExpertDetector(scale, 3, nc=prompts, masks=bool(seg))
    off = kind == "textonly"
    cfg = ModelConfig(scale=scale, sam=not off, edp=not off, rvp=not off, t2v=not off, v2t=not off,
                      sam_freeze=freeze_sam if not off else None, masks=bool(seg))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(cfg, TEXT_DIM, sam_encoder=None if off else MobileSAMEncoder())


def _forward(model: Any, images: Any, text: Any) -> Any:
    return model(images) if text is None else model(images, text)


def latency(spec: dict[str, Any]) -> dict[str, Any]:
    """Median forward ms/image at each batch size, peak RSS of this process."""
    import torch

    torch.set_num_threads(spec["threads"])
    dev = torch.device(spec.get("device", "cpu"))
    model = build(spec["model"], spec["prompts"]).to(dev).eval()
    text = None if spec["model"].startswith("expert") else torch.nn.functional.normalize(
        torch.randn(spec["prompts"], TEXT_DIM, device=dev), dim=-1)
    out = {}
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.float16, enabled=spec.get("half", False)):
        for batch in spec["batches"]:
            x = torch.rand(batch, 3, spec["imgsz"], spec["imgsz"], device=dev)
            times = []
            for i in range(spec["warmup"] + spec["repeats"]):
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                _forward(model, x, text)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                if i >= spec["warmup"]:
                    times.append(time.perf_counter() - t)
            med = statistics.median(times)
            out[str(batch)] = {"ms_per_image": 1000 * med / batch, "images_per_s": batch / med}
    return {"batches": out, "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads(), "load": load1()}


def synthetic_batch(b: int, imgsz: int, k: int, boxes: int = 4) -> Any:
    """A ``Batch`` of random images with ``boxes`` random GT boxes each over a ``k``-class vocabulary."""
    import torch

    from rtvp.structures import Batch

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(b, boxes, 2, generator=g) * imgsz * 0.7
    wh = 8 + torch.rand(b, boxes, 2, generator=g) * imgsz * 0.25
    return Batch(images=torch.rand(b, 3, imgsz, imgsz, generator=g), gt_boxes=torch.cat([xy, xy + wh], -1),
                 gt_labels=torch.randint(0, k, (b, boxes), generator=g), gt_mask=torch.ones(b, boxes, dtype=torch.bool),
                 vocab_ids=torch.arange(k), image_ids=list(range(b)), orig_sizes=torch.full((b, 2), imgsz),
                 scales=torch.ones(b), pads=torch.zeros(b, 2))


def train_speed(spec: dict[str, Any]) -> dict[str, Any]:
    """Images/s of full training steps (fwd + loss + bwd + AdamW), peak RSS of this process."""
    import torch

    from rtvp.loss import DetectionCriterion

    torch.set_num_threads(spec["threads"])
    dev = torch.device(spec.get("device", "cpu"))
    k = spec["prompts"]
    model = build(spec["model"], k, freeze_sam=spec["freeze_sam"]).to(dev).train()
    text = None if spec["model"].startswith("expert") else torch.nn.functional.normalize(
        torch.randn(k, TEXT_DIM, device=dev), dim=-1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    crit, batch = DetectionCriterion(), synthetic_batch(spec["batch"], spec["imgsz"], k).to(dev)
    scaler = torch.amp.GradScaler(enabled=spec.get("half", False))
    times = []
    for i in range(spec["warmup"] + spec["steps"]):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.float16, enabled=spec.get("half", False)):
            loss = crit(_forward(model, batch.images, text), batch)["loss"]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= spec["warmup"]:
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"images_per_s": spec["batch"] / med, "ms_per_step": 1000 * med, "load": load1(),
            "peak_rss_mb": peak_rss_mb(),
            "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None}


def worker_main(kind: str, spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    from _runtimes import runtime_latency

    result = {"latency": latency, "train": train_speed,
              "runtimes": lambda s: runtime_latency(s, build)}[kind](spec)
    Path(spec["out"]).write_text(json.dumps(result), encoding="utf-8")


def in_worker(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``kind`` in a fresh interpreter (isolated peak memory)."""
    with tempfile.TemporaryDirectory(prefix="rtvp-cost-") as tmp:
        out, spec_path = Path(tmp) / "out.json", Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps({**spec, "out": str(out)}), encoding="utf-8")
        proc = subprocess.run([sys.executable, __file__, "--worker", kind, str(spec_path)], capture_output=True,
                              text=True, check=False)
        if proc.returncode or not out.is_file():
            raise RuntimeError(f"cost worker {kind} {spec} failed:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------- driver side
def static_cost(scales: list[str], sizes: list[int], prompts: int) -> dict[str, Any]:
    """Params and GFLOPs per component of every model (meta device: shapes only, fast)."""
    from rtvp.cli.info import model_info

    out: dict[str, Any] = {}
    kinds = (("rtvpnet", "rtvpnet"), ("textonly", "baseline"), ("expert", "expert"))
    names = [(f"{k}-{s}", f"{i}-{s}") for k, i in kinds for s in scales]
    names += [(f"{k}-{scales[0]}-seg", f"{k}-{scales[0]}-seg") for k in ("rtvpnet", "expert")]  # the mask branch
    for name, info_name in names:
        for imgsz in sizes:
            info = model_info(info_name, imgsz, prompts=prompts, text_encoder="none")
            out[f"{name}@{imgsz}"] = {"params": {k: v["total"] for k, v in info["params"].items()},
                                      "gflops": info["gflops"], "sam_imgsz": info["sam_imgsz"]}
    return out


def yolo_available(args: Any) -> bool:
    from _yolo import ultralytics_version

    return not args.no_yolo and (not args.quick or ultralytics_version() is not None)


def yolo_cell(name: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    from _yolo import run_yolo

    if kind == "cost":
        return run_yolo("cost", {"model": f"{name}.yaml", **spec})
    out = {}
    for batch in spec["batches"]:
        out[str(batch)] = run_yolo("latency", {"model": f"{name}.yaml", **spec, "batch": batch})
    return {"batches": out, "peak_rss_mb": max(v["peak_rss_mb"] for v in out.values()), "threads": spec["threads"],
            "load": load1()}


def text_encoder_params() -> int | None:
    """Parameters of the default (frozen, cached) text encoder; not counted in the model totals."""
    try:
        from rtvp.models.text import build_text_encoder

        return int(build_text_encoder("minilm").num_parameters())
    except Exception:  # noqa: BLE001 - optional figure
        return None


def plan(args: Any) -> dict[str, Any]:
    """What to measure (quick mode: n only, small sizes, few repeats; ``--lat-models`` / ``--batches`` override)."""
    p = _plan(args)
    p["runtime_models"] = args.runtime_models or [m for m in p["lat_models"] if m.endswith("-n")]
    p["lat_models"] = args.lat_models or p["lat_models"]
    p["batches"] = args.batches or p["batches"]
    return p


def _plan(args: Any) -> dict[str, Any]:
    if args.quick:
        return {"scales": ["n"], "sizes": [320], "lat_models": ["rtvpnet-n", "textonly-n", "expert-n", "expert-n-seg"],
                "yolo": ["yolov8n"], "lat_sizes": [128], "batches": [1, 2], "warmup": 1, "repeats": 2,
                "train": [("rtvpnet-n", False), ("expert-n", True)], "train_imgsz": 128, "train_batch": 2, "steps": 1}
    return {"scales": ["n", "s", "l"], "sizes": [320, 640], "yolo": ["yolov8n", "yolov8s", "yolov8n-seg"],
            "lat_models": ["rtvpnet-n", "rtvpnet-s", "textonly-n", "textonly-s", "expert-n", "expert-s",
                           "rtvpnet-n-seg", "expert-n-seg"],
            "lat_sizes": args.latency_sizes, "batches": [1, 8], "warmup": args.warmup, "repeats": args.repeats,
            "train": [("rtvpnet-n", False), ("rtvpnet-n", True), ("rtvpnet-s", True), ("textonly-n", True),
                      ("expert-n", True), ("expert-s", True)],
            "train_imgsz": 320, "train_batch": 8, "steps": args.steps}


def make_cells(args: Any, p: dict[str, Any]) -> list[Cell]:
    cells = [Cell("static", "params + GFLOPs per component", {k: p[k] for k in ("scales", "sizes")} |
                  {"prompts": args.prompts},
                  lambda: {"models": static_cost(p["scales"], p["sizes"], args.prompts),
                           "text_encoder_params": text_encoder_params()})] if "static" in args.sections else []
    yolo = p["yolo"] if yolo_available(args) else []
    for name in yolo if "static" in args.sections else []:
        for imgsz in p["sizes"]:
            cells.append(Cell(f"yolo-cost-{name}@{imgsz}", f"{name} params/GFLOPs @{imgsz}", {"imgsz": imgsz},
                              lambda n=name, s=imgsz: yolo_cell(n, "cost", {"imgsz": s})))
    devices = [("cpu", False, p["batches"])] + ([("cuda", True, [1, 8, 32])] if args.gpu else [])
    for dev, half, batches in devices:
        for imgsz in p["lat_sizes"]:
            base = {"imgsz": imgsz, "batches": batches, "warmup": p["warmup"], "repeats": p["repeats"],
                    "threads": args.threads, "device": dev, "half": half, "prompts": args.prompts}
            for m in p["runtime_models"] if dev == "cpu" and "runtimes" in args.sections else []:
                spec = {**base, "model": m, "runtimes": args.runtimes}
                cells.append(Cell(f"rt-{m}@{imgsz}-{dev}", f"runtimes {m} @{imgsz} {dev}", spec,
                                  lambda s=spec: in_worker("runtimes", s)))
            for m in p["lat_models"] if "latency" in args.sections else []:
                cells.append(Cell(f"lat-{m}@{imgsz}-{dev}", f"latency {m} @{imgsz} {dev}", base,
                                  lambda b=base, m=m: in_worker("latency", {**b, "model": m})))
            for name, fuse in ((n, f) for n in yolo for f in (False, True) if "latency" in args.sections):
                spec = {**{k: v for k, v in base.items() if k != "prompts"}, "fuse": fuse}
                tag = f"{name}-fused" if fuse else name
                cells.append(Cell(f"lat-{tag}@{imgsz}-{dev}", f"latency {tag} @{imgsz} {dev} (Ultralytics)", spec,
                                  lambda s=spec, n=name: yolo_cell(n, "latency", s)))
        for m, freeze in p["train"] if "train" in args.sections else []:
            spec = {"model": m, "freeze_sam": freeze, "imgsz": p["train_imgsz"], "threads": args.threads,
                    "batch": 32 if dev == "cuda" else p["train_batch"], "warmup": 1, "steps": p["steps"],
                    "device": dev, "half": half, "prompts": args.prompts}
            cells.append(Cell(f"train-{m}-{'frozen' if freeze else 'trainable'}-{dev}",
                              f"train speed {m}" + (f" ({'frozen' if freeze else 'trainable'} SAM)"
                                                    if m.startswith("rtvpnet") else "") + f" {dev}", spec,
                              lambda s=spec: in_worker("train", s)))
    return cells


def static_tables(res: dict[str, Any], p: dict[str, Any]) -> list[Table]:
    models, te = res["static"]["models"], res["static"]["text_encoder_params"]
    params = Table("params", "Parameters per component (M; random SAM counted as MobileSAM TinyViT-5M)",
                   ["Model", *COMPONENTS, "total", "+ text encoder", "paper"], digits=2)
    flops = Table("gflops", f"GFLOPs per component (K = {res['_prompts']} prompts)",
                  ["Model", "imgsz", "SAM input", *COMPONENTS, "total"], digits=2)
    for key, v in models.items():
        name, imgsz = key.split("@")
        if imgsz == str(p["sizes"][0]):
            tot = v["params"]["total"]
            params.rows.append([name, *(v["params"].get(c, 0) / 1e6 for c in COMPONENTS), tot / 1e6,
                                (tot + te) / 1e6 if te else None, PAPER.get(name)])
        sam = "x".join(map(str, v["sam_imgsz"])) if v["sam_imgsz"] else "-"
        flops.rows.append([name, int(imgsz), sam, *(v["gflops"].get(c, 0.0) for c in COMPONENTS),
                           v["gflops"]["total"]])
    for key, v in res.items():
        if key.startswith("yolo-cost-"):
            name, imgsz = key.removeprefix("yolo-cost-").split("@")
            if imgsz == str(p["sizes"][0]):
                params.rows.append([f"{name} (Ultralytics)", *([None] * len(COMPONENTS)), v["params_M"], None, None])
            flops.rows.append([f"{name} (Ultralytics)", int(imgsz), "-", *([None] * len(COMPONENTS)), v["gflops"]])
    params.note = (f"text encoder = all-MiniLM-L6-v2 ({te / 1e6:.1f} M, frozen, prompts encoded once and cached)."
                   if te else "text encoder not loaded.") + " Expert/YOLOv8 heads sized for 80 classes."
    flops.note = ("torch.utils.flop_counter on the meta device: 2 FLOPs per multiply-add, conv/matmul/attention only "
                  "(YOLOv8's own convention); scale n runs SAM at half the input size.")
    return [params, flops]


def speed_tables(res: dict[str, Any]) -> list[Table]:
    out = []
    for dev in ("cpu", "cuda"):
        lat = {k: v for k, v in res.items() if k.startswith(("lat-", "rt-")) and k.endswith(f"-{dev}")}
        if lat:
            batches = sorted({int(b) for v in lat.values() for bs in v.get("runtimes", {"": v.get("batches")}).values()
                              for b in bs})
            t = Table(f"latency_{dev}", f"{dev.upper()} latency, bare forward (median ms/image)",
                      ["Model", "imgsz", *(f"ms/img b{b}" for b in batches), f"img/s b{batches[-1]}",
                       "peak RSS MB", "threads", "load avg"])
            for key, v in ((k, v) for k, v in lat.items() if k.startswith("lat-")):
                name, imgsz = key.removeprefix("lat-").removesuffix(f"-{dev}").split("@")
                label = name
                if name.startswith("yolo"):
                    label = f"{name.removesuffix('-fused')} (Ultralytics{', conv+BN fused' if 'fused' in name else ''})"
                bs = v["batches"]
                t.rows.append([label, int(imgsz), *(bs[str(b)]["ms_per_image"] if str(b) in bs else None
                                                    for b in batches),
                               (bs.get(str(batches[-1])) or {}).get("images_per_s"), v["peak_rss_mb"], v["threads"],
                               v.get("load")])
            t.rows += runtime_rows(res, dev, batches)
            t.rows.sort(key=lambda r: (r[1], r[0]))
            t.note = ("'load avg' = 1-min load average of the machine at the end of the measurement (timings on a "
                      "shared CPU are noisy when it exceeds the idle cores). Random weights, random input, inference "
                      "mode; no letterbox/NMS. expert-* is rtvp's YOLOv8-"
                      "architecture expert (the YOLOv8 stand-in in-process); yolov8* is Ultralytics in its own "
                      "venv, as built (unfused, like the rtvp rows) and with conv+BN fused (what its predict runs). "
                      + ("fp16 autocast." if dev == "cuda" else "fp32.") + RUNTIME_NOTE)
            out.append(t)
        tr = {k: v for k, v in res.items() if k.startswith("train-") and k.endswith(f"-{dev}")}
        if tr:
            t = Table(f"train_{dev}", f"{dev.upper()} training throughput (fwd + loss + bwd + AdamW, random data)",
                      ["Model", "SAM", "images/s", "ms/step", "peak RSS MB", "peak CUDA MB", "load avg"])
            for key, v in tr.items():
                _, kind, scale, sam, _ = key.split("-")
                has_sam = kind == "rtvpnet"
                t.rows.append([f"{kind}-{scale}", sam if has_sam else "-", v["images_per_s"], v["ms_per_step"],
                               v["peak_rss_mb"], v["peak_cuda_mb"], v.get("load")])
            out.append(t)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=80, help="vocabulary size K (FLOPs, latency, training)")
    parser.add_argument("--latency-sizes", nargs="+", type=int, default=[320, 640])
    parser.add_argument("--repeats", type=int, default=10, help="timed repetitions (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--no-yolo", action="store_true", help="skip the Ultralytics rows")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, help="what to measure")
    parser.add_argument("--lat-models", nargs="+", default=None, help="PyTorch latency models (default: per mode)")
    parser.add_argument("--runtime-models", nargs="+", default=None, help="runtime rows (default: the n models)")
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    parser.add_argument("--batches", nargs="+", type=int, default=None, help="latency batch sizes (default: 1 8)")
    args = parse_args(parser, argv)
    import torch

    args.gpu = torch.cuda.is_available() and args.device != "cpu"
    run = BenchRun("cost", args)
    p = plan(args)
    res = dict(run.run_cells(make_cells(args, p)))
    res["_prompts"] = args.prompts
    tables = (static_tables(res, p) if "static" in res else []) + speed_tables(res)
    notes = [f"Threads: {args.threads} (rtvp and Ultralytics workers alike). Each latency/training measurement runs in "
             "a fresh process; peak RSS = that process's maximum resident set (interpreter + torch + model).",
             "GPU rows: " + ("measured." if args.gpu else "skipped (no CUDA device on this machine).")]
    if not yolo_available(args):
        notes.append("Ultralytics rows skipped (--no-yolo, or --quick without an existing benchmarks/.venv-yolo).")
    run.write(tables, notes + goal_notes(res))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
