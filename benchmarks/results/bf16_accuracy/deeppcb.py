"""DeepPCB, 320 px, batch 16 (the fixed split), fp32 vs bf16 autocast (--amp): expert-n 16 epochs (stage 1) and
rtvpnet-n 4 more epochs from that expert (stage 2), seeds 0 and 1.

Run from the repository root: ``python benchmarks/results/bf16_accuracy/deeppcb.py [seeds...] [--expert-only]``. Writes
``deeppcb.json`` beside this file after every cell (AP in %, wall time, images/s); a cell already in the file is
kept (a retrained copy of it, needed for stage 2, is recorded as ``<cell>-rerun``), so an interrupted run
resumes where it stopped.
"""
import json
import re
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import DATASETS, machine_info  # noqa: E402
from _train import Budget, evaluate_weights, make_config, train_run  # noqa: E402
from closed_vs_yolov8 import prepare  # noqa: E402

RUNS = REPO / "benchmarks" / "runs"
expert_only = "--expert-only" in sys.argv  # seeds beyond the first two: stage 1 only (the stage-2 cells cost 2x)
seeds = [int(s) for s in sys.argv[1:] if s != "--expert-only"] or [1, 0]
bench, _ = prepare(SimpleNamespace(runs_dir=RUNS, datasets_root=DATASETS, split="fixed"), "deeppcb")
budget = Budget(scale="n", imgsz=320, batch=16, epochs=4, expert_epochs=16, workers=0, sam_weights=None)
path = Path(__file__).with_name("deeppcb.json")
out = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
out.setdefault("machines", []).append(machine_info())


def summarize(runs: dict) -> dict:
    """Mean and sample sd of AP / AP50 and images/s over the seeds, per precision and stage (reruns left out)."""
    out = {}
    for name in ("fp32", "bf16"):
        for stage, suffix in (("stage1", ""), ("stage2", "-stage2")):
            cells = [v for k, v in runs.items() if re.fullmatch(rf"{name}-seed\d+{suffix}", k)]
            if cells:
                out[f"{name}-{stage}"] = {"seeds": len(cells), **{
                    f"{key}_{f}": round(fn([c[key] for c in cells]), 2) if len(cells) > 1 or f == "mean" else None
                    for key in ("AP", "AP50") for f, fn in (("mean", statistics.fmean), ("sd", statistics.stdev))}}
    return out


def cell(key: str, cfg, name: str) -> dict:
    """Train (or reuse) one run, score it on closed_val, record it under ``key``."""
    run = train_run(cfg, RUNS, name)
    if key in out["runs"]:  # an earlier invocation scored this cell: record the retrained copy beside it
        key = f"{key}-rerun"
    if key not in out["runs"]:
        m = evaluate_weights(run["best"], bench, "closed", 320)
        out["runs"][key] = {"wall_s": run["wall_s"], "train_images_per_s": run["train_images_per_s"],
                            **{k: round(100 * m[k], 1) for k in ("AP", "AP50", "AP75")}}
        print(key, out["runs"][key], flush=True)
    out["summary"] = summarize(out["runs"])
    path.write_text(json.dumps(out, indent=1))
    return run


for seed in seeds:
    for name, amp in (("fp32", False), ("bf16", True)):
        if f"{name}-seed{seed}-stage2" in out["runs"] or (expert_only and f"{name}-seed{seed}" in out["runs"]):
            continue
        train = {"amp": amp, "seed": seed}
        expert = cell(f"{name}-seed{seed}", make_config(bench, "closed", budget, stage="expert", train=train),
                      f"expert-closed-{name}")
        if expert_only:
            continue
        cell(f"{name}-seed{seed}-stage2", make_config(bench, "closed", budget, stage="full", train=train,
                                                      expert_weights=Path(expert["best"])), f"rtvpnet-closed-{name}")
out["summary"] = summarize(out["runs"])
path.write_text(json.dumps(out, indent=1))
