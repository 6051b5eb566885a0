"""DeepPCB expert-n, 16 epochs at 320 px, batch 16 (the fixed split): fp32 vs bf16 autocast (--amp), seeds 0 and 1.

Run from the repository root: ``python benchmarks/results/bf16_accuracy/deeppcb.py [seeds...]``. Writes
``deeppcb.json`` beside this file (AP in %, wall time, images/s, the precision the run log reported).
"""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import DATASETS, machine_info  # noqa: E402
from _train import Budget, evaluate_weights, make_config, train_run  # noqa: E402
from closed_vs_yolov8 import prepare  # noqa: E402

RUNS = REPO / "benchmarks" / "runs"
seeds = [int(s) for s in sys.argv[1:]] or [0, 1]
bench, _ = prepare(SimpleNamespace(runs_dir=RUNS, datasets_root=DATASETS, split="fixed"), "deeppcb")
budget = Budget(scale="n", imgsz=320, batch=16, epochs=4, expert_epochs=16, workers=0, sam_weights=None)
path = Path(__file__).with_name("deeppcb.json")
out = json.loads(path.read_text()) if path.is_file() else {"machine": machine_info(), "runs": {}}
for seed in seeds:
    for name, amp in (("fp32", False), ("bf16", True)):
        cfg = make_config(bench, "closed", budget, stage="expert", train={"amp": amp, "seed": seed})
        run = train_run(cfg, RUNS, f"expert-closed-{name}")
        m = evaluate_weights(run["best"], bench, "closed", 320)
        out["runs"][f"{name}-seed{seed}"] = {"wall_s": run["wall_s"], "train_images_per_s": run["train_images_per_s"],
                                             **{k: round(100 * m[k], 1) for k in ("AP", "AP50", "AP75")}}
        print(name, seed, out["runs"][f"{name}-seed{seed}"], flush=True)
        path.write_text(json.dumps(out, indent=1))
