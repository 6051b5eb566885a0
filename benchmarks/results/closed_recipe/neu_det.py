"""NEU-DET expert-n at YOLOv8n's budget (224 px, batch 32, 30 epochs): recipe cells, 2 seeds each.

Cells (stage 1 alone, the fixed split of ``closed_vs_yolov8.py``): mosaic closed for the last 10 epochs (the best
24-epoch cell of ``../close_mosaic``), at 30 epochs, seeds 0 and 1; then the same at batch 16 (twice the optimizer
steps in the same epochs; YOLOv8n keeps batch 32). ``python neu_det.py [CELL ...]`` runs the named cells only.
Writes ``neu_det.json`` after every cell (resumable: finished runs are reused from ``benchmarks/runs/train``).
"""
import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from _train import Budget, evaluate_weights, make_config, train_run  # noqa: E402

RUNS = REPO / "benchmarks" / "runs"
bench = RUNS / "_bench" / "neu_det-fixed"
budget = Budget(scale="n", imgsz=224, batch=32, epochs=6, expert_epochs=30, workers=0, sam_weights=None)
CELLS = {f"close-mosaic-10-seed{s}": {"close_mosaic": 0, "augment.mosaic_stop_epoch": 20, "seed": s} for s in (0, 1)}
CELLS.update({f"batch16-seed{s}": {"batch": 16, "close_mosaic": 0, "augment.mosaic_stop_epoch": 20, "seed": s}
              for s in (0, 1)})
target = Path(__file__).with_name("neu_det.json")
out = json.loads(target.read_text()) if target.is_file() else {}
for name, extra in CELLS.items():
    if sys.argv[1:] and name not in sys.argv[1:]:
        continue
    cell_budget = dataclasses.replace(budget, batch=extra.get("batch", budget.batch))
    train = {k: v for k, v in extra.items() if k != "batch"}
    cfg = make_config(bench, "closed", cell_budget, stage="expert", train=train)
    run = train_run(cfg, RUNS, "expert-closed")
    m = evaluate_weights(run["best"], bench, "closed", 224)
    out[name] = {"train": run, "overrides": extra, "metrics": {k: m[k] for k in ("AP", "AP50", "AP75")}}
    print(name, json.dumps(out[name]), flush=True)
    target.write_text(json.dumps(out, indent=1))
