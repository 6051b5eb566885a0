"""Does stage 2 earn its cost on a closed set? expert-n vs rtvpnet-n at equal total epochs, 2 seeds, 2 datasets.

Budgets and fixed splits of ``closed_vs_yolov8.py`` (NEU-DET 224 px, batch 32, 30 epochs; DeepPCB 320 px, batch 16,
20 epochs). ``expert`` cells train stage 1 alone for all the epochs; ``rtvpnet`` cells train stage 1 for 80 % of
them and stage 2 (the full RTVPNet, from that expert) for the rest, as ``closed_vs_yolov8.py`` does. Both use the
default recipe of ``rtvp train`` (``close_mosaic=10``, at most half of each stage); the expert cells pin that as
``augment.mosaic_stop_epoch`` so NEU-DET's cells are the cached runs of ``neu_det.py``.

    python benchmarks/results/closed_recipe/stage2.py [CELL ...]   # e.g. deeppcb-expert-seed0; none = all cells

Writes ``stage2.json`` after every cell and ``stage2.md`` (mean +- sd over the seeds); resumable (finished runs are
reused from ``benchmarks/runs/train``).
"""
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from _train import Budget, evaluate_weights, make_config, train_run  # noqa: E402

RUNS = REPO / "benchmarks" / "runs"
SETUPS = {"neu_det": (224, 32, 30), "deeppcb": (320, 16, 20)}  # imgsz, batch, total epochs (closed_vs_yolov8.py)
SEEDS = (0, 1)
KEYS = ("AP", "AP50", "AP75")
TARGET = Path(__file__).with_name("stage2.json")
YOLO = REPO / "benchmarks" / "results" / "closed_vs_yolov8"  # in-script YOLOv8n rows: same-epoch-<dataset>-yolo


def cell(dataset: str, model: str, seed: int) -> dict:
    """Train (or reuse) one cell and score its final weights on the fixed closed_val."""
    imgsz, batch, total = SETUPS[dataset]
    bench = RUNS / "_bench" / f"{dataset}-fixed"
    stage1 = total if model == "expert" else round(0.8 * total)
    # stage-2 epochs (0 for an expert cell: a stage-1 run reads only expert_epochs, so the run key is unchanged)
    budget = Budget(scale="n", imgsz=imgsz, batch=batch, epochs=total - stage1, expert_epochs=stage1, workers=0,
                    sam_weights=None)
    pin = {"close_mosaic": 0, "augment.mosaic_stop_epoch": total - min(10, total // 2)} if model == "expert" else {}
    expert = train_run(make_config(bench, "closed", budget, stage="expert", train={**pin, "seed": seed}), RUNS,
                       "expert-closed")
    run = expert
    if model == "rtvpnet":
        run = train_run(make_config(bench, "closed", budget, stage="full", expert_weights=Path(expert["best"]),
                                    train={"seed": seed}), RUNS, "rtvpnet-closed")
    metrics = evaluate_weights(run["best"], bench, "closed", imgsz)
    wall = run["wall_s"] + (expert["wall_s"] if run is not expert else 0.0)
    return {"epochs": [stage1, budget.epochs] if model == "rtvpnet" else [total], "train_min": round(wall / 60, 1),
            "metrics": {k: metrics[k] for k in KEYS}}


def yolo_row(dataset: str) -> dict | None:
    """The YOLOv8n row (``Model``, ``AP``, ``AP50``, ``AP75``, ``epochs``, ``train min``) that
    ``closed_vs_yolov8.py`` wrote for ``dataset`` at the same budget, or None when that run is not committed."""
    path = YOLO / f"same-epoch-{dataset}-yolo" / "results.json"
    if not path.is_file():
        return None
    table = json.loads(path.read_text())["tables"][0]
    return next((dict(zip(table["columns"], row, strict=True)) for row in table["rows"]
                 if str(row[0]).startswith("YOLOv8n")), None)


def table(out: dict) -> str:
    """Markdown: per dataset the in-script YOLOv8n row, then one row per model (mean +- sd of AP over the seeds that
    ran) with its AP as a multiple of YOLOv8n's."""
    lines = ["| dataset | Model | epochs | seeds | AP | AP50 | AP75 | train min | x YOLOv8n AP |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dataset in SETUPS:
        yolo = yolo_row(dataset)
        if yolo:
            lines.append(f"| {dataset} | {yolo['Model']} | {yolo['epochs']} | 1 | {yolo['AP']:.1f} | "
                         f"{yolo['AP50']:.1f} | {yolo['AP75']:.1f} | {yolo['train min']:.1f} | 1.00 |")
        for model in ("expert", "rtvpnet"):
            cells = [out[k] for k in (f"{dataset}-{model}-seed{s}" for s in SEEDS) if k in out]
            if not cells:
                continue
            ap = [100 * c["metrics"]["AP"] for c in cells]
            sd = f" +- {statistics.stdev(ap):.1f}" if len(ap) > 1 else ""
            mean = {k: 100 * statistics.mean(c["metrics"][k] for c in cells) for k in KEYS}
            ratio = f"{mean['AP'] / yolo['AP']:.2f}" if yolo else "-"
            lines.append(f"| {dataset} | {model}-n | {' + '.join(map(str, cells[0]['epochs']))} | {len(cells)} | "
                         f"{mean['AP']:.1f}{sd} | {mean['AP50']:.1f} | {mean['AP75']:.1f} | "
                         f"{statistics.mean(c['train_min'] for c in cells):.1f} | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = json.loads(TARGET.read_text()) if TARGET.is_file() else {}
    for dataset in SETUPS:
        for seed in SEEDS:
            for model in ("expert", "rtvpnet"):
                name = f"{dataset}-{model}-seed{seed}"
                if sys.argv[1:] and name not in sys.argv[1:]:
                    continue
                out[name] = cell(dataset, model, seed)
                print(name, json.dumps(out[name]), flush=True)
                TARGET.write_text(json.dumps(out, indent=1))
    TARGET.with_suffix(".md").write_text(table(out))
    print(table(out))
