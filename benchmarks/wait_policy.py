"""How OpenMP's wait policy changes CPU training speed, on a quiet machine and next to one busy process.

torch's CPU kernels run in OpenMP (libgomp) parallel regions; between two regions the worker threads either spin
(fast hand-off, but they burn a core another process may need) or sleep (``OMP_WAIT_POLICY=PASSIVE``, rtvp's
earlier default). A training step of rtvpnet-n at the demo's size is thousands of small kernels, so the hand-off
cost adds up. Each cell runs in a fresh subprocess (the variables are read when torch loads libgomp) and times
``Trainer.run_step`` on a random batch (``train_speed.make_trainer``: bf16 autocast + channels_last where the CPU has
native bf16, else fp32). Next to it, for the whole cell: nothing ("quiet"), one process spinning on one core ("busy
neighbour"), a second copy of the same training under the same policy ("twin", two jobs sharing the cores), or four
spinning processes ("crowd", a heavily oversubscribed machine).

    python benchmarks/wait_policy.py                      # rtvpnet-n and expert-n, batch 8 at 192 px
    python benchmarks/wait_policy.py --quick              # expert-tiny at 64 px
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import BenchRun, Table, build_parser, parse_args

# name -> environment; None removes the variable (libgomp's own default: spin ~300k iterations, then sleep)
POLICIES: dict[str, dict[str, str | None]] = {
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None},
    "libgomp default": {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None},
    "GOMP_SPINCOUNT=10000": {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=100000": {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "100000"},
    "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": None},
}
CELL_CODE = """
import json, os, sys
env = {{k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}}  # as libgomp will read them
sys.path.insert(0, {bench_dir!r})
import torch
torch.set_num_threads({threads})
from train_speed import step_times
from rtvp.device import autocast_dtype
amp, _ = autocast_dtype(torch.device("cpu"), None)
mode = "bf16 + channels_last" if amp is not None else "fp32"
times = step_times({model!r}, mode, {batch}, {imgsz}, 6, {steps}, 2)
print("CELL" + json.dumps({{"times": times, "mode": mode, "env": env}}))
"""


CONDITIONS = ("quiet", "busy", "twin", "crowd")
CROWD = 4  # spinning processes of the "crowd" condition: load ~5 on a 2-core machine


def run_cell(policy: str, model: str, batch: int, imgsz: int, steps: int, threads: int, condition: str
             ) -> dict[str, Any]:
    """Time ``steps`` training steps in a subprocess under ``policy`` next to the ``condition``'s neighbour."""
    env = dict(os.environ)
    for key, value in POLICIES[policy].items():
        env.pop(key, None) if value is None else env.__setitem__(key, value)
    def code(n_steps: int) -> str:
        return CELL_CODE.format(bench_dir=str(Path(__file__).parent), threads=threads, model=model, batch=batch,
                                imgsz=imgsz, steps=n_steps)

    neighbours = []
    if condition in ("busy", "crowd"):
        neighbours = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(CROWD if condition == "crowd" else 1)]
    elif condition == "twin":  # the same training, long enough to outlast the measured one
        neighbours = [subprocess.Popen([sys.executable, "-c", code(100 * steps)], env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)]
    try:
        out = subprocess.run([sys.executable, "-c", code(steps)], env=env, capture_output=True, text=True, check=False)
    finally:
        for neighbour in neighbours:
            neighbour.kill()
            neighbour.wait()
    lines = [line for line in out.stdout.splitlines() if line.startswith("CELL")]
    if out.returncode or not lines:
        raise RuntimeError(f"cell {policy}/{model} failed (rc {out.returncode}):\n{out.stderr[-2000:]}")
    cell = json.loads(lines[-1][4:])
    median = statistics.median(cell["times"])
    return {"ms_per_step": 1000 * median, "images_per_s": batch / median, **cell}


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["rtvpnet-n", "expert-n"])
    parser.add_argument("--imgsz", type=int, default=192)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    args = parse_args(parser, argv)
    models, imgsz, batch, steps = args.models, args.imgsz, args.batch, args.steps
    if args.quick:
        models, imgsz, batch, steps = ["expert-tiny"], 64, 2, 2
    threads = args.threads or os.cpu_count() or 1
    run = BenchRun("wait_policy", args)
    table = Table("wait_policy", f"Training images/s by OpenMP wait policy, batch {batch} at {imgsz} px, "
                  f"{threads} torch threads (median of {steps} steps)",
                  ["model", "policy", *(f"{c} img/s" for c in args.conditions),
                   *(f"{c} x PASSIVE" for c in args.conditions)])
    raw: dict[str, Any] = {}
    for model in models:
        base: dict[str, float] = {}
        for policy in args.policies:
            cells = {c: run_cell(policy, model, batch, imgsz, steps, threads, c) for c in args.conditions}
            raw[f"{model} / {policy}"] = cells
            speed = {c: cell["images_per_s"] for c, cell in cells.items()}
            if policy == "PASSIVE":
                base = speed
            table.rows.append([model, policy, *speed.values(),
                               *(speed[c] / base[c] if base else None for c in args.conditions)])
            print(table.rows[-1], flush=True)
    notes = ["Each cell: a fresh subprocess with the policy's environment, 2 warm-up steps, then the median step. "
             "busy: one `python -c 'while True: pass'` process for the whole cell (one core of another job). "
             "twin: a second process running the same training under the same policy (two jobs on the cores). "
             f"crowd: {CROWD} spinning processes. "
             "x PASSIVE: images/s over the PASSIVE row of the same model and condition."]
    run.write([table], notes, extra={"raw": raw})


if __name__ == "__main__":
    main()
