"""Closed set vs YOLOv8 (paper Table V protocol): Ultralytics YOLOv8n from scratch vs rtvpnet-n on the same split.

Per dataset: build a single-dataset benchmark (``benchmarks/recipes/<dataset>.yaml``), re-split it (``--split
fixed``: NEU-DET val = every 5th image in file-name order, DeepPCB val = the official ``test.txt`` pairs; ``--split
builder`` keeps the builder's stratified ~80/20 split), export it with ``rtvp data export --format yolo``, then

- train Ultralytics YOLOv8n from ``yolov8n.yaml`` (no pretrained weights, offline, plots off, AMP off) in its own
  virtual environment (``benchmarks/.venv-yolo``, created on first use; rtvp never imports Ultralytics), predict the
  val images (conf 0.001, IoU 0.7, 300 boxes) and convert the boxes to COCO results with the benchmark's ids;
- train rtvpnet-n with the same total epochs, image size, batch, threads and split (stage 1 = the expert for
  ``--expert-epochs``, stage 2 = the full model for the rest), and predict with rtvp's predictor;
- score both with rtvp's evaluator on the same ``closed_val.json``: AP, AP50, AP75, APs/m/l and the ratio.

    python benchmarks/closed_vs_yolov8.py --quick
    python benchmarks/closed_vs_yolov8.py      # NEU-DET 224 px 30 ep batch 32, DeepPCB 320 px 20 ep batch 16
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, DATASETS, BenchRun, Cell, Table, build_parser, config_hash, parse_args, pct, ratio
from _train import (
    QUICK,
    Budget,
    evaluate_weights,
    load_coco,
    make_config,
    quick_bench,
    recipe_bench,
    resolve_device,
    rtvp_cli,
    summarize,
    train_run,
)

SETUPS = {"neu_det": {"imgsz": 224, "epochs": 30, "batch": 32}, "deeppcb": {"imgsz": 320, "epochs": 20, "batch": 16}}
KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def fixed_split(bench: Path, dataset: str, root: Path, out: Path) -> Path:
    """Copy of ``bench`` with ``closed_{train,val}`` re-split by the dataset's fixed rule (open splits untouched)."""
    from rtvp.bench.version import scratch_bench

    if (out / "benchmark.yaml").is_file():
        return out
    tr, va = load_coco(bench, "closed_train"), load_coco(bench, "closed_val")
    images, anns = tr["images"] + va["images"], tr["annotations"] + va["annotations"]
    if dataset == "neu_det":
        order = sorted(images, key=lambda im: im["file_name"])
        val = {im["id"] for i, im in enumerate(order) if i % 5 == 4}
    elif dataset == "deeppcb":
        lines = (root / "deeppcb" / "PCBData" / "test.txt").read_text(encoding="utf-8").split("\n")
        test = {Path(line.split()[0]).stem for line in lines if line.strip()}
        val = {im["id"] for im in images if Path(im["file_name"]).stem.removesuffix("_test") in test}
    else:
        raise SystemExit(f"--split fixed: no fixed rule for {dataset}; use --split builder")

    def part(name: str, keep: bool) -> dict[str, Any]:
        ids = {im["id"] for im in images if (im["id"] in val) == keep}
        return {**tr, "info": {**tr.get("info", {}), "split": name, "resplit": f"fixed ({dataset})"},
                "images": sorted((im for im in images if im["id"] in ids), key=lambda im: im["id"]),
                "annotations": sorted((a for a in anns if a["image_id"] in ids), key=lambda a: a["id"])}

    return scratch_bench(bench, out, {"closed_train": part("closed_train", False),
                                      "closed_val": part("closed_val", True)})


def prepare(args: Any, dataset: str) -> tuple[Path, Path]:
    """``(benchmark, exported data.yaml)`` for one dataset (built, re-split and exported once per runs folder)."""
    if dataset == "synth":
        bench = quick_bench(args.runs_dir)
    else:
        built = recipe_bench(BENCH_DIR / "recipes" / f"{dataset}.yaml", args.datasets_root, args.runs_dir)
        bench = built if args.split == "builder" else fixed_split(
            built, dataset, args.datasets_root, built.parent / f"{dataset}-fixed")
    export = bench.parent / f"{bench.name}-yolo"
    if not (export / "data.yaml").is_file():
        rtvp_cli("data", "export", str(bench), "--format", "yolo", "--out", str(export), "--overwrite")
    return bench, export / "data.yaml"


def yolo_cell(args: Any, bench: Path, data_yaml: Path, setup: dict[str, Any], dataset: str) -> dict[str, Any]:
    """Train YOLOv8 in the venv, predict the val images there, score the boxes with rtvp's evaluator."""
    from _yolo import run_yolo, val_results

    from rtvp.evaluation.evaluator import evaluate

    spec = {"data": str(data_yaml), "model": f"{args.yolo_model}.yaml", "epochs": setup["epochs"],
            "imgsz": setup["imgsz"], "batch": setup["batch"], "workers": args.workers, "threads": args.threads,
            "device": "cpu" if resolve_device(args.device) == "cpu" else "0", "seed": 0}
    spec["project"] = str(Path(args.runs_dir) / "closed_vs_yolov8" / "yolo")
    spec["name"] = f"{dataset}-{args.yolo_model}-{config_hash([spec, str(data_yaml)])}"
    trained = run_yolo("train", spec, stream=True)
    results, eval_images_per_s = val_results(bench, trained["weights"], setup["imgsz"], args.threads, spec["device"])
    metrics = summarize(evaluate(bench / "annotations" / "closed_val.json", results, "closed"))
    n_train = len(load_coco(bench, "closed_train")["images"])
    return {"train": trained, "metrics": metrics, "train_images": n_train,
            "train_images_per_s": n_train * setup["epochs"] / trained["wall_s"],
            "eval_images_per_s": eval_images_per_s}


def rtvp_cell(args: Any, bench: Path, setup: dict[str, Any]) -> dict[str, Any]:
    """Stage 1 (expert) + stage 2 (rtvpnet) with the same total epochs; both stages scored on closed_val."""
    total = setup["epochs"]
    e1 = args.expert_epochs if args.expert_epochs is not None else max(1, math.ceil(total / 2))
    budget = Budget(scale=args.scale, imgsz=setup["imgsz"], batch=setup["batch"], epochs=max(1, total - e1),
                    expert_epochs=e1, workers=args.workers, sam_weights=args.sam_weights)
    if args.quick:
        budget = Budget(**{**QUICK.__dict__, "imgsz": setup["imgsz"]})
    expert = train_run(make_config(bench, "closed", budget, stage="expert", device=args.device), args.runs_dir,
                       "expert-closed")
    full = train_run(make_config(bench, "closed", budget, stage="full", expert_weights=Path(expert["best"]),
                                 device=args.device), args.runs_dir, "rtvpnet-closed")
    out = {"budget": budget.__dict__}
    for name, run in (("expert", expert), ("rtvpnet", full)):
        out[name] = {"train": run, "metrics": evaluate_weights(run["best"], bench, "closed", budget.imgsz,
                                                               device=args.device)}
    return out


def table(dataset: str, setup: dict[str, Any], yolo: dict[str, Any] | None, ours: dict[str, Any] | None) -> Table:
    cols = ["Model", *KEYS, "epochs", "train min", "train img/s", "eval img/s", "Ultralytics val mAP50-95 / mAP50"]
    t = Table(f"closed_{dataset}", f"{dataset}: closed set, {setup['imgsz']} px, batch {setup['batch']} (Table V "
              "protocol, rtvp evaluator)", cols)
    if yolo is not None:
        own = yolo["train"]["own_val"]
        t.rows.append(["YOLOv8n (Ultralytics, scratch)", *(pct(yolo["metrics"], k) for k in KEYS), setup["epochs"],
                       yolo["train"]["wall_s"] / 60, yolo["train_images_per_s"], yolo["eval_images_per_s"],
                       f"{100 * own['mAP50-95']:.1f} / {100 * own['mAP50']:.1f}"])
    t.note = "AP columns in % (COCO, rtvp evaluator, same closed_val.json for every row)."
    if ours is None:
        return t
    b, e1 = ours["budget"], ours["expert"]["train"]
    for key, label, epochs in (("expert", f"rtvp expert-{b['scale']} (stage 1 only)", b["expert_epochs"]),
                               ("rtvpnet", f"rtvpnet-{b['scale']} (stage 1 + 2)", b["expert_epochs"] + b["epochs"])):
        r = ours[key]
        wall = r["train"]["wall_s"] + (e1["wall_s"] if key == "rtvpnet" else 0.0)
        imgs = e1["train_images"] * epochs
        t.rows.append([label, *(pct(r["metrics"], k) for k in KEYS), epochs, wall / 60, imgs / wall if wall else None,
                       r["metrics"].get("eval_images_per_s"), None])
    if yolo is not None:
        y, r = yolo["metrics"], ours["rtvpnet"]["metrics"]
        t.rows.append(["ratio rtvpnet / YOLOv8n", *(ratio(pct(r, k), pct(y, k)) for k in KEYS), None, None, None,
                       None, None])
        t.note += " The ratio row is rtvpnet / YOLOv8n (not %)."
    return t


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--datasets-root", type=Path, default=DATASETS, help="--root of the recipe builds")
    parser.add_argument("--split", choices=["fixed", "builder"], default="fixed")
    parser.add_argument("--epochs", type=int, default=None, help="override every dataset's total epochs")
    parser.add_argument("--imgsz", type=int, default=None, help="override every dataset's image size")
    parser.add_argument("--batch", type=int, default=None, help="override every dataset's batch size")
    parser.add_argument("--expert-epochs", type=int, default=None, help="rtvp stage-1 epochs (default: half)")
    parser.add_argument("--scale", default="n", help="rtvp scale (YOLOv8 counterpart: --yolo-model)")
    parser.add_argument("--yolo-model", default="yolov8n")
    parser.add_argument("--workers", type=int, default=0, help="dataloader workers (Ultralytics forces 0 on CPU)")
    parser.add_argument("--sam-weights", default=None, help="official mobile_sam.pt (frozen SAM)")
    parser.add_argument("--no-yolo", action="store_true", help="skip the Ultralytics baseline")
    parser.add_argument("--no-rtvp", action="store_true", help="run only the Ultralytics baseline")
    args = parse_args(parser, argv)
    run = BenchRun("closed_vs_yolov8", args)
    datasets = ["synth"] if args.quick else args.datasets
    tables, cells, setups = [], [], {}
    for ds in datasets:
        setup = {"imgsz": 96, "epochs": 2, "batch": 8} if ds == "synth" else dict(SETUPS[ds])
        setup.update({k: getattr(args, k) for k in ("epochs", "imgsz", "batch") if getattr(args, k) and not args.quick})
        bench, data_yaml = prepare(args, ds)
        setups[ds] = (setup, bench)
        base = {"bench": str(bench), "setup": setup, "split": args.split, "threads": args.threads,
                "workers": args.workers}
        if not args.no_yolo:
            cells.append(Cell(f"{ds}-yolo", f"{ds} {args.yolo_model} (Ultralytics)", {**base, "model": args.yolo_model},
                              lambda b=bench, d=data_yaml, s=setup, n=ds: yolo_cell(args, b, d, s, n)))
        scale = QUICK.scale if args.quick else args.scale
        if args.no_rtvp:
            continue
        cells.append(Cell(f"{ds}-rtvp", f"{ds} rtvpnet-{scale}", {**base, "scale": scale,
                          "expert_epochs": args.expert_epochs, "sam": args.sam_weights},
                          lambda b=bench, s=setup: rtvp_cell(args, b, s)))
    results = run.run_cells(cells)
    for ds, (setup, _) in setups.items():
        tables.append(table(ds, setup, results.get(f"{ds}-yolo"), results.get(f"{ds}-rtvp")))
    split = ("NEU-DET val = every 5th image in file-name order, DeepPCB val = official test.txt pairs; applied to "
             "the built benchmark because the builder's split is always the stratified ~80/20 one"
             if args.split == "fixed" else "the builder's stratified ~80/20 split")
    if args.quick:
        split = "quick: the synthetic benchmark's own (builder) split"
    notes = [
        f"Splits: {split}. Benchmarks: " + ", ".join(f"`{b}`" for _, b in setups.values()) + ".",
        "Budget parity: same total epochs, image size, batch, torch threads and dataloader workers; each tool keeps "
        "its own training recipe otherwise (Ultralytics defaults: SGD/AdamW auto, mosaic closed for the last 10 "
        "epochs; rtvp defaults: AdamW 2e-3, mosaic throughout). rtvpnet's epochs are split between stage 1 (the "
        "expert, a YOLOv8-architecture detector) and stage 2; its stage-1 row is that expert after stage 1 only.",
        "The 'Ultralytics val' column is Ultralytics' own validator (rect batches padded by half a stride, its own AP "
        "code): a cross-check, not comparable digit for digit with the rtvp-evaluator columns.",
        "Timing: 'train min' is the wall time of the training call (rtvpnet: both stages, without evaluation; "
        "Ultralytics: its train() call, which also scans the dataset and validates once at the end); 'eval img/s' "
        "includes model loading, image decoding, letterbox, forward and NMS over the val set.",
    ]
    if args.sam_weights is None:
        notes.append("No MobileSAM weights: rtvpnet's SAM branch is random and trained from scratch.")
    run.write(tables, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
