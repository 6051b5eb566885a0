"""Backward time of single 3x3 convolutions, fp32 vs CPU bf16 autocast (the shapes behind the fp32 fallback of
``rtvp.models.layers.Conv2d``), batch 8, 2 torch threads, best of 3 after a warm-up, in milliseconds.

Run from the repository root: ``python benchmarks/results/bf16_conv/wgrad.py TAG``; writes ``wgrad-TAG.json`` beside
this file with the machine (load average included: the effect this measures depends on whether another process
holds a core, so say in TAG which it was).
"""
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import machine_info  # noqa: E402

SHAPES = [(128, 10, 1), (96, 10, 1), (256, 10, 1), (128, 16, 1), (128, 20, 1), (64, 20, 1), (64, 40, 2)]


def backward_ms(channels: int, size: int, stride: int, bf16: bool) -> float:
    """Best-of-3 backward (input and weight gradients) of one conv after a warm-up."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
    x = torch.randn(8, channels, size, size, requires_grad=True)
    times = []
    for _ in range(4):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = conv(x)
        t = time.perf_counter()
        y.float().sum().backward()
        times.append(1000 * (time.perf_counter() - t))
    return min(times[1:])


torch.set_num_threads(2)
tag = sys.argv[1] if len(sys.argv) > 1 else "run"
rows = [{"channels": c, "size": s, "stride": st, "fp32_ms": round(backward_ms(c, s, st, False), 2),
         "bf16_ms": round(backward_ms(c, s, st, True), 2)} for c, s, st in SHAPES]
for r in rows:
    print(r, flush=True)
out = {"machine": machine_info(), "tag": tag, "rows": rows}
Path(__file__).with_name(f"wgrad-{tag}.json").write_text(json.dumps(out, indent=1))
