"""``rtvp train`` throughput by data-loader workers, the user path (a fresh ``rtvp train`` process per cell).

rtvp leaves libgomp's wait policy on (its 2 threads spin briefly between kernels) unless the machine is already
oversubscribed when rtvp is imported (``rtvp._default_wait_policy``); ``rtvp train`` defaults to 4 loader workers.
On a 2-core machine those worker processes compete with the spinning threads. Each cell trains expert-n with the
mask branch (the ``rtvp demo`` setting: the synthetic set at 192 px, batch 8, mosaic 0.5) for ``--epochs`` epochs
with ``--workers`` N, no evaluation, and reads the trainer's ``results.csv``: images/s of each epoch after the first
(the first includes worker start-up and the decoded-image cache fill).

    python benchmarks/loader_workers.py                       # workers 0, 2, 4; 5 epochs
    python benchmarks/loader_workers.py --quick
"""

from __future__ import annotations

import csv
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import BenchRun, Table, build_parser, parse_args
from _train import SYNTH_RECIPE, quick_bench, rtvp_cli


def demo_bench(runs_root: Path, images: int = 240, size: int = 192) -> Path:
    """The synthetic benchmark ``rtvp demo`` trains on (seed 0), built once per runs folder."""
    root = Path(runs_root) / "_bench" / f"synth-{images}-{size}"
    data, bench = root / "data", root / "bench"
    if not (bench / "benchmark.yaml").is_file():
        rtvp_cli("data", "synth", "--out", str(data), "--images", str(images), "--size", str(size), "--seed", "0",
                 "--overwrite")
        rtvp_cli("data", "build", str(SYNTH_RECIPE), "--root", str(data), "--out", str(bench), "--quiet")
    return bench


def train_cell(bench: Path, out: Path, model: str, workers: int, epochs: int, imgsz: int) -> dict[str, Any]:
    """One ``rtvp train`` run; per-epoch images/s from its ``results.csv`` and the process's wall seconds."""
    cmd = [sys.executable, "-m", "rtvp.cli.main", "train", "--data", str(bench), "--protocol", "closed", "--model",
           model, "--epochs", str(epochs), "--imgsz", str(imgsz), "--batch", "8", "--workers", str(workers),
           "--out", str(out), *(f"--set={kv}" for kv in ("exist_ok=true", "seed=0", "val_period=0", "tensorboard=false",
                                                          "plots=false", "model.masks=true", "augment.mosaic=0.5"))]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(out / "results.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    per_epoch = [float(r["images_per_s"]) for r in rows]
    steady = per_epoch[1:] or per_epoch
    return {"images_per_s": per_epoch, "median_after_first": statistics.median(steady), "wall_s": round(wall, 1)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--model", default="expert-n")
    args = parse_args(parser, argv)
    model, imgsz, epochs = args.model, 192, args.epochs
    if args.quick:
        bench, model, imgsz, epochs = quick_bench(args.runs_dir), "expert-tiny", 64, 2
    else:
        bench = demo_bench(args.runs_dir)
    run = BenchRun("loader_workers", args)
    table = Table("loader_workers", f"rtvp train {model} at {imgsz} px, batch 8: images/s by loader workers",
                  ["workers", "img/s (median, epochs 2+)", "img/s per epoch", "process s", "x vs 0 workers"])
    raw: dict[str, Any] = {}
    for workers in args.workers:
        raw[str(workers)] = train_cell(bench, run.run_dir / f"w{workers}", model, workers, epochs, imgsz)
    base = raw[str(args.workers[0])]["median_after_first"]
    for workers in args.workers:
        r = raw[str(workers)]
        table.rows.append([workers, r["median_after_first"], " ".join(f"{v:.1f}" for v in r["images_per_s"]),
                           r["wall_s"], r["median_after_first"] / base])
    notes = [f"One `rtvp train` process per row, run one after another; x: images/s over the {args.workers[0]}-worker "
             "row's. The wait policy in the machine table is the parent's; each `rtvp train` decides its own at "
             "import by the same rule (the load average then)."]
    run.write([table], notes, extra={"raw": raw, "bench": str(bench)})


if __name__ == "__main__":
    main()
