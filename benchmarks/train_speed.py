"""Training-step throughput by precision: fp32 vs bf16 autocast vs bf16 + channels_last, through rtvp's Trainer.

Every cell runs ``Trainer.run_step`` (forward under the run's autocast, the loss in fp32, backward, AdamW) on a
random batch (``cost.synthetic_batch``: 4 boxes per image), after warm-up steps. The modes of a model are interleaved
round by round, so a neighbour process that slows the machine down slows every mode alike; the table reports the
median over rounds and the ratio to fp32 of the same round set. bf16 needs a CPU with native bf16 (``amx_bf16`` or
``avx512_bf16``); elsewhere it is emulated and the script says so.

A second table times the data loader (ms per training batch, augmentations on) with the decoded-image cache off and
on, at 0 and 2 worker processes, on ``--bench`` (default: the synthetic benchmark of ``--quick``).

    python benchmarks/train_speed.py                  # expert-n and rtvpnet-n, batch 16 / 8 at 320 px
    python benchmarks/train_speed.py --quick          # expert-tiny at 64 px, 2 rounds
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from _common import BenchRun, Table, build_parser, parse_args
from cost import build, synthetic_batch

MODES = {"fp32": (None, False), "bf16": ("bf16", False), "bf16 + channels_last": ("bf16", True)}


def make_trainer(name: str, mode: str, batch: int, imgsz: int, prompts: int) -> tuple[Any, Any]:
    """``(Trainer, batch)``: a fresh ``name`` model in ``mode`` (SAM trainable) and a random batch for ``run_step``."""
    import torch
    from torch.utils.data import TensorDataset

    from rtvp.loss import DetectionCriterion
    from rtvp.training.distributed import make_loader
    from rtvp.training.trainer import Trainer

    torch.manual_seed(0)
    dtype, channels_last = MODES[mode]
    model = build(name, prompts, freeze_sam=False)
    text = None if name.startswith("expert") else torch.nn.functional.normalize(torch.randn(prompts, 384), dim=-1)
    params = [p for p in model.parameters() if p.requires_grad]
    loader = make_loader(TensorDataset(torch.zeros(batch)), batch, lambda s: s, workers=0)  # run_step needs none
    trainer = Trainer(model, DetectionCriterion(), loader, torch.optim.AdamW(params, lr=1e-4), epochs=1,
                      device="cpu", text_table=text, amp=torch.bfloat16 if dtype else None,
                      channels_last=channels_last)
    return trainer, synthetic_batch(batch, imgsz, prompts)


def step_times(name: str, mode: str, batch: int, imgsz: int, prompts: int, steps: int, warmup: int) -> list[float]:
    """Seconds per ``Trainer.run_step`` of a fresh ``name`` model in ``mode`` (after ``warmup`` steps)."""
    trainer, data = make_trainer(name, mode, batch, imgsz, prompts)
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        trainer.run_step(data)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def loader_ms(bench: Any, imgsz: int, batch: int, workers: int, cache: bool, batches: int = 20) -> float:
    """Milliseconds per batch of the augmented training loader (first batch, incl. worker start-up, excluded)."""
    from rtvp.data import DetectionDataset, build_dataloader

    ds = DetectionDataset(bench, "closed_train", "closed", imgsz=imgsz, augment=True, cache=cache, seed=0)
    it = iter(build_dataloader(ds, batch, shuffle=True, workers=workers, seed=0))
    next(it)
    t, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            next(it)
        except StopIteration:
            break
        n += 1
    return 1000 * (time.perf_counter() - t) / max(n, 1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["expert-n", "rtvpnet-n"])
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 8], help="batch per model (in --models order)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--bench", default=None, help="benchmark for the loader table (default: the quick one)")
    args = parse_args(parser, argv)
    if args.quick:
        args.models, args.imgsz, args.batch, args.rounds, args.steps = ["expert-tiny"], 64, [4], 2, 2
    import torch

    from rtvp.device import autocast_dtype, cpu_bf16_flags

    run = BenchRun("train_speed", args)
    table = Table("train_speed", f"Training step throughput at {args.imgsz} px ({args.threads} threads)",
                  ["Model", "batch", "precision", "img/s", "x fp32", "ms/step"], digits=2)
    raw: dict[str, Any] = {}
    for name, batch in zip(args.models, args.batch * len(args.models), strict=False):
        times: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(args.rounds):
            for mode in MODES:
                times[mode] += step_times(name, mode, batch, args.imgsz, 6, args.steps, warmup=1)
        med = {m: statistics.median(t) for m, t in times.items()}
        raw[name] = {"batch": batch, "seconds_per_step": times}
        for mode, s in med.items():
            table.rows.append([name, batch, mode, batch / s, med["fp32"] / s, 1000 * s])
    from _train import quick_bench

    bench = args.bench or quick_bench(args.runs_dir)
    loader = Table("loader", f"Training loader at {args.imgsz} px, batch {args.batch[0]} ({bench})",
                   ["cache", "workers", "ms/batch"])
    for cache in (False, True):
        for workers in (0, 2):
            loader.rows.append([cache, workers, loader_ms(bench, args.imgsz, args.batch[0], workers, cache)])
    native = cpu_bf16_flags()
    why = autocast_dtype(torch.device("cpu"), None)[1]
    notes = [f"CPU native bf16 flags: {native or 'none (bf16 is emulated here)'}; `rtvp train` default: {why}.",
             f"Median over {args.rounds} interleaved rounds x {args.steps} steps per mode (1 warm-up step each); "
             "random data, SAM trainable (no mobile_sam.pt), 6 classes."]
    run.write([table, loader], notes, extra={"raw": raw, "bf16_flags": native})


if __name__ == "__main__":
    main()
