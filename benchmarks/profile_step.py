"""Where a training step's time goes: ``torch.profiler`` over ``Trainer.run_step`` (one stage-2 step by default).

The Trainer labels its phases (``rtvp/forward``, ``rtvp/loss`` = label assignment + losses in fp32,
``rtvp/backward``, ``rtvp/optimizer``); the first table splits the step into them (CPU time of each label, the
rest of the step is "other"), the second lists the top operators by self CPU time. Random data
(``cost.synthetic_batch``: 4 boxes per image), SAM trainable, after warm-up steps.

    python benchmarks/profile_step.py                        # rtvpnet-n, batch 8, 320 px, fp32 and bf16 + CL
    python benchmarks/profile_step.py --quick                # expert-tiny at 64 px
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from _common import BenchRun, Table, build_parser, parse_args
from train_speed import MODES, make_trainer

PHASES = ("rtvp/forward", "rtvp/loss", "rtvp/backward", "rtvp/optimizer")


def profile(name: str, mode: str, batch: int, imgsz: int, steps: int, top: int, fallback: bool) -> dict[str, Any]:
    """Profile ``steps`` steps of ``name`` in ``mode``: wall ms/step, per-phase ms/step, top ops by self CPU.

    ``fallback``: :class:`rtvp.models.layers.Conv2d`'s fp32 fallback under bf16 autocast (rtvp's default: off).
    """
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from rtvp.models.layers import set_bf16_conv_fallback

    previous = set_bf16_conv_fallback(fallback)
    try:
        trainer, data = make_trainer(name, mode, batch, imgsz, prompts=6)
        trainer.run_step(data)  # warm-up (oneDNN primitive creation, allocator)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(steps):
                trainer.run_step(data)
            wall = (time.perf_counter() - t0) / steps
    finally:
        set_bf16_conv_fallback(previous)
    events = prof.key_averages()
    phases = {e.key: e.cpu_time_total / 1000 / steps for e in events if e.key in PHASES}
    ops = sorted((e for e in events if not e.key.startswith("rtvp/")), key=lambda e: -e.self_cpu_time_total)
    return {"ms_per_step": 1000 * wall, "phases_ms": phases,
            "top_ops": [{"op": e.key, "self_ms": e.self_cpu_time_total / 1000 / steps, "calls": e.count // steps}
                        for e in ops[:top]]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", default="rtvpnet-n")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--modes", nargs="+", default=["fp32", "bf16 + channels_last"], choices=list(MODES))
    args = parse_args(parser, argv)
    if args.quick:
        args.model, args.imgsz, args.batch, args.steps = "expert-tiny", 64, 4, 2
    run = BenchRun("profile_step", args)
    runs = [(m, False) for m in args.modes] + [(m, True) for m in args.modes if m != "fp32"]
    raw = {(f"{mode}, fp32 conv fallback" if on else mode): profile(
        args.model, mode, args.batch, args.imgsz, args.steps, args.top, on) for mode, on in runs}
    phases = Table("phases", f"{args.model}, batch {args.batch} at {args.imgsz} px: ms per step by phase "
                   f"({args.threads} threads)", ["precision", *PHASES, "other", "step"], digits=1)
    for mode, r in raw.items():
        ph = [r["phases_ms"].get(p, 0.0) for p in PHASES]
        phases.rows.append([mode, *ph, r["ms_per_step"] - sum(ph), r["ms_per_step"]])
    tables = [phases]
    for mode, r in raw.items():
        slug = "".join(c if c.isalnum() else "_" for c in mode)
        t = Table(f"top_ops_{slug}", f"Top {args.top} operators by self CPU time ({mode})",
                  ["op", "self ms/step", "% of step", "calls/step"], digits=1)
        t.rows = [[o["op"], o["self_ms"], 100 * o["self_ms"] / r["ms_per_step"], o["calls"]] for o in r["top_ops"]]
        tables.append(t)
    notes = ["'fp32 conv fallback' (RTVP_BF16_CONV_FALLBACK=1, off by default): strided convolutions and those with "
             "<= 100 output pixels train in fp32 under bf16 autocast (`rtvp.models.layers.Conv2d`): their bf16 weight "
             "gradient stalls when another process holds a core; on a quiet machine it only costs time.",
             f"Mean over {args.steps} profiled steps after 1 warm-up step; the profiler adds overhead, so the step "
             "time here is above `train_speed.py`'s. 'other' = the step minus the four labelled phases (batch "
             "transfer, loss all-reduce, zero_grad). Random data, 6 classes, SAM trainable (no mobile_sam.pt)."]
    run.write(tables, notes, extra={"raw": raw})


if __name__ == "__main__":
    main()
