"""Data amount (paper Table XIV): 10 % / 50 % / 100 % of the training images, closed and open protocol.

The subset is a seeded random share of ``closed_train`` images; ``open_train`` keeps the same images (those of the
subset it holds), so both protocols draw from one pool; the val splits never change. For every share and protocol:
RTVPNet (stage 1 + stage 2 on the subset), the text-only variant (YOLO-World-like, same stage-1 expert) and, for the
closed protocol, the stage-1 expert itself (our YOLOv8-architecture detector; the paper's closed baselines are
YOLO-World-S and YOLOv12S).

    python benchmarks/data_amount.py --quick
    python benchmarks/data_amount.py --fractions 0.1 0.5 1.0 --models rtvpnet textonly expert
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import BenchRun, Cell, Table, build_parser, parse_args, pct
from _train import (
    VARIANTS,
    Budget,
    add_bench_args,
    add_budget_args,
    bench_from_args,
    budget_from_args,
    evaluate_weights,
    load_coco,
    make_config,
    subset_for,
    train_run,
)

FULL = Budget(scale="n", imgsz=320, batch=16, epochs=10, expert_epochs=10, workers=2)
MODELS = ("rtvpnet", "textonly", "expert")
# Paper Table XIV, closed scene (AP, AP50) at 0.1M / 0.5M / 1M images of MMIOC-1M (= 10 % / 50 % / 100 %).
PAPER_CLOSED = {
    "RTVPNet-S": {0.1: (10.8, 21.2), 0.5: (19.6, 28.1), 1.0: (36.7, 60.7)},
    "YOLOWorld-S": {0.1: (6.3, 13.3), 0.5: (10.4, 21.0), 1.0: (20.4, 38.1)},
    "YOLOv12S": {0.1: (5.4, 11.7), 0.5: (12.7, 23.6), 1.0: (23.5, 47.8)},
}


def run_cell(args: Any, bench: Path, budget: Budget, fraction: float, protocol: str, model: str) -> dict[str, Any]:
    """Train one model on one share (stage 1 shared by the models of the same share and protocol) and score it."""
    data = subset_for(args.runs_dir, bench, fraction, args.seed)
    expert = train_run(make_config(data, protocol, budget, stage="expert", device=args.device), args.runs_dir,
                       f"expert-{protocol}")
    if model == "expert":
        run = expert
    else:
        cfg = make_config(data, protocol, budget, stage="full", expert_weights=Path(expert["best"]),
                          model=VARIANTS[model], device=args.device)
        run = train_run(cfg, args.runs_dir, f"data-{protocol}-{model}")
    metrics = evaluate_weights(run["best"], data, protocol, budget.imgsz, device=args.device)
    return {"train": run, "metrics": metrics, "train_images": len(load_coco(data, f"{protocol}_train")["images"])}


def tables(results: dict[str, Any], args: Any, protocols: list[str], models: list[str]) -> list[Table]:
    out = []
    for protocol in protocols:
        shown = [m for m in models if protocol == "closed" or m != "expert"]
        cols = ["Ratio", "train images"]
        for m in shown:
            cols += [f"{m} AP", f"{m} AP50"]
        if protocol == "closed":
            cols += [f"paper {k} AP" for k in PAPER_CLOSED]
        t = Table(f"data_amount_{protocol}", f"Table XIV: training data amount ({protocol} protocol)", cols)
        for f in args.fractions:
            row: list[Any] = [f"{f:.0%}", None]
            for m in shown:
                r = results.get(f"{protocol}-{m}-{f:g}")
                row[1] = row[1] or (r and r["train_images"])
                row += [pct(r and r["metrics"], "AP"), pct(r and r["metrics"], "AP50")]
            if protocol == "closed":
                row += [PAPER_CLOSED[k].get(round(f, 2), (None,))[0] for k in PAPER_CLOSED]
            t.rows.append(row)
        t.note = ("AP / AP50 in %. Open protocol = unseen classes prompted, unseen GT. 'expert' = the stage-1 "
                  "closed-set detector (YOLOv8 architecture). Paper columns: closed scene of MMIOC-1M, 0.1M / 0.5M / "
                  "1M images.")
        out.append(t)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(__doc__.split("\n\n")[0])
    add_budget_args(parser, FULL)
    add_bench_args(parser)
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.1, 0.5, 1.0])
    parser.add_argument("--protocols", nargs="+", default=["closed", "open"], choices=["closed", "open"])
    parser.add_argument("--models", nargs="+", default=None, choices=MODELS,
                        help="default: rtvpnet textonly expert (quick: rtvpnet expert)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image subsets")
    args = parse_args(parser, argv)
    models = args.models or (["rtvpnet", "expert"] if args.quick else list(MODELS))
    budget = budget_from_args(args)
    run = BenchRun("data_amount", args)
    bench = bench_from_args(args)
    cells = []
    for protocol in args.protocols:
        for f in args.fractions:
            for m in models:
                if m == "expert" and protocol != "closed":
                    continue
                config = {"bench": str(bench), "budget": budget.__dict__, "fraction": f, "seed": args.seed,
                          "protocol": protocol, "model": m}
                cells.append(Cell(f"{protocol}-{m}-{f:g}", f"{protocol} {m} {f:.0%}", config,
                                  lambda p=protocol, f=f, m=m: run_cell(args, bench, budget, f, p, m)))
    results = run.run_cells(cells)
    notes = [f"Benchmark `{bench}`; budget per run {budget}; subsets seeded with {args.seed}. The same epochs are run "
             "on every share, so smaller shares also get fewer optimizer steps (as in the paper's pre-training "
             "comparison)."]
    run.write(tables(results, args, args.protocols, models), notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
