"""SAM encoder (MobileSAM TinyViT) time with and without the single-window padding shortcut.

rtvpnet-n feeds SAM half the input (96 px at the demo's 192, 160 at 320): stage 2's 14 x 14 attention window then
covers a 6 x 6 or 10 x 10 map. Without the shortcut the map is zero-padded to the window and every padding token
attends; with it (``Attention.forward_corner``) only the real tokens plus one key for all the padding do, with the
same result. Times one training step (forward + backward, bf16 autocast + channels_last where the CPU has native
bf16, else fp32) and one eval forward of the encoder, median of ``--steps`` after 2 warm-up steps.

    python benchmarks/sam_window.py                      # 96 and 160 px at batch 8, 160 and 320 px at batch 1
    python benchmarks/sam_window.py --quick
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from _common import BenchRun, Table, build_parser, parse_args


def time_encoder(size: int, batch: int, steps: int, shortcut: bool) -> dict[str, float]:
    """Median ms of a train step and of an eval forward of a fresh TinyViT at ``size`` px."""
    import torch

    from rtvp.device import autocast_dtype
    from rtvp.models.tinyvit import TinyViT, TinyViTBlock

    amp, _ = autocast_dtype(torch.device("cpu"), None)
    fmt = torch.channels_last if amp is not None else torch.contiguous_format
    torch.manual_seed(0)
    model = TinyViT().to(memory_format=fmt)
    x = torch.rand(batch, 3, size, size).contiguous(memory_format=fmt)
    previous, TinyViTBlock.corner_shortcut = TinyViTBlock.corner_shortcut, shortcut
    try:
        out = {}
        for phase, train in (("train_ms", True), ("eval_ms", False)):
            model.train(train)
            times = []
            for i in range(steps + 2):
                t0 = time.perf_counter()
                with torch.set_grad_enabled(train), torch.autocast("cpu", dtype=amp or torch.float32,
                                                                   enabled=amp is not None):
                    y = model(x)
                if train:
                    y.float().mean().backward()
                if i >= 2:
                    times.append(time.perf_counter() - t0)
            out[phase] = 1000 * statistics.median(times)
    finally:
        TinyViTBlock.corner_shortcut = previous
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    args = parse_args(parser, argv)
    cells = [(96, 8), (160, 8), (160, 1), (320, 1)]
    steps = args.steps
    if args.quick:
        cells, steps = [(64, 1)], 1
    run = BenchRun("sam_window", args)
    table = Table("sam_window", f"MobileSAM TinyViT ms, padded window vs shortcut (median of {steps})",
                  ["SAM input px", "batch", "train ms padded", "train ms shortcut", "eval ms padded",
                   "eval ms shortcut", "train x", "eval x"])
    raw: dict[str, Any] = {}
    for size, batch in cells:
        padded, short = (time_encoder(size, batch, steps, s) for s in (False, True))
        raw[f"{size}/{batch}"] = {"padded": padded, "shortcut": short}
        table.rows.append([size, batch, padded["train_ms"], short["train_ms"], padded["eval_ms"], short["eval_ms"],
                           padded["train_ms"] / short["train_ms"], padded["eval_ms"] / short["eval_ms"]])
    notes = ["x: padded time over shortcut time (above 1: the shortcut is faster). At 320 px SAM sees 20 x 20 "
             "tokens in stage 2: several windows, the shortcut does not apply (a control row)."]
    run.write([table], notes, extra={"raw": raw})


if __name__ == "__main__":
    main()
