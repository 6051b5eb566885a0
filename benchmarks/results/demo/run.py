"""Run ``rtvp demo`` and keep its ``metrics.json`` here; ``--table`` rebuilds ``results.csv`` + a markdown table.

    python benchmarks/results/demo/run.py NAME [demo flags ...]   # -> NAME/metrics.json, a line in runs.jsonl
    python benchmarks/results/demo/run.py --table                 # -> results.csv, prints the markdown table

Each run line records the folder, the commit, the demo flags, the CPU model and the torch threads; ``metrics.json``
has the OpenMP wait policy the demo ran under (since the eleventh session; PASSIVE before). The table reads only those
files, so every figure in README.md comes from a ``metrics.json`` that ``rtvp demo`` wrote.
"""

from __future__ import annotations

import csv
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs.jsonl"
COLUMNS = ["folder", "commit", "flags", "time_s", "precision", "closed AP", "closed AP50", "closed mask_AP",
           "closed mask_AP50", "open AP50", "open AP_unseen", "cpu", "threads", "omp_wait_policy"]


def cpu_model() -> str:
    """``Model name`` from ``lscpu`` (falls back to ``platform.processor()``)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor()


def run(name: str, flags: list[str]) -> None:
    """``rtvp demo --out TMP FLAGS``; copy its metrics.json to ``NAME/`` and append the run line."""
    import torch

    import rtvp

    # the commit of the rtvp that runs (a worktree on PYTHONPATH pins it while this checkout moves on)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(rtvp.__file__).parent).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="rtvp-demo-") as tmp:
        rtvp = Path(sys.executable).with_name("rtvp")
        subprocess.run([str(rtvp), "demo", "--out", tmp, *flags], check=True)
        (HERE / name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "metrics.json", HERE / name / "metrics.json")
        for protocol in ("closed", "open"):  # per-epoch times of each stage: where the time goes
            for stage, csv_path in (("expert", f"runs/{protocol}/expert/results.csv"),
                                    ("full", f"runs/{protocol}/results.csv")):
                if (Path(tmp) / csv_path).is_file():
                    shutil.copyfile(Path(tmp) / csv_path, HERE / name / f"{protocol}-{stage}.csv")
        weights = Path(tmp) / "runs" / "closed" / "weights"  # checkpoint sizes of the closed stage 2
        sizes = {f"{f.stem}_pt_mb": round(f.stat().st_size / 2**20, 1) for f in sorted(weights.glob("*.pt"))}
    line = {"folder": name, "commit": commit, "flags": " ".join(flags), "cpu": cpu_model(),
            "threads": torch.get_num_threads(), **sizes}
    with RUNS.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def _fmt(v: object) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def table() -> None:
    """``results.csv`` from every run line (the latest line of a folder wins), and the markdown table on stdout."""
    lines = {}
    for raw in RUNS.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            line = json.loads(raw)
            lines[line["folder"]] = line
    rows = []
    for name, line in lines.items():
        m = json.loads((HERE / name / "metrics.json").read_text(encoding="utf-8"))
        c, o = m["closed"], m["open"]
        rows.append([name, line["commit"], line["flags"], m["time_s"], m.get("precision"), c["AP"], c["AP50"],
                     c.get("mask_AP"), c.get("mask_AP50"), o["AP50"], o.get("AP_unseen"), line["cpu"],
                     line["threads"], m.get("omp_wait_policy", "-")])
    with (HERE / "results.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([COLUMNS, *rows])
    shown = [i for i, col in enumerate(COLUMNS) if col not in ("cpu", "threads", "precision", "omp_wait_policy")]
    print("| " + " | ".join(COLUMNS[i] for i in shown) + " |")
    print("|" + "---|" * len(shown))
    for row in rows:
        print("| " + " | ".join(_fmt(row[i]) for i in shown) + " |")


if __name__ == "__main__":
    if sys.argv[1:] == ["--table"]:
        table()
    else:
        run(sys.argv[1], sys.argv[2:])
