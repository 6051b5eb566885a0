"""Shared plumbing of the benchmark scripts: machine description, result tables, resumable cells, progress.

Every script follows the same shape::

    args = parse_args(build_parser("..."), argv)          # --quick, --runs-dir, --results-dir, --threads, ...
    bench = BenchRun("ablations", args)                    # run dir (caches, checkpoints) + results dir
    results = bench.run_cells([Cell(key, desc, config, fn), ...])   # cached per cell as JSON, skipped on rerun
    bench.write([Table(...)], notes=[...])                 # results.md + one CSV per table + results.json (atomic)

Folders (both overridable, e.g. by the smoke test):

- run dir ``benchmarks/runs/<script>/<tag>/``: ``cells/<key>.json`` (one finished cell each) and anything the cells
  write (training runs live in the shared ``benchmarks/runs/train/`` so scripts reuse each other's checkpoints);
- results dir ``benchmarks/results/<script>/<tag>/``: what gets committed. ``<tag>`` is ``quick`` or ``full``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# rtvp picks the OpenMP wait policy (PASSIVE only on an oversubscribed machine, rtvp._default_wait_policy); it must
# run before torch is imported. Each results.md records the policy that ran (machine table, omp_wait_policy).
import rtvp  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "benchmarks"
DEFAULT_RUNS = BENCH_DIR / "runs"
DEFAULT_RESULTS = BENCH_DIR / "results"
DATASETS = REPO.parent / "shared" / "datasets"


# ----------------------------------------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*cmd: str) -> str:
    try:
        out = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, timeout=20, check=False)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "?"))
    except ImportError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    """CPU/GPU, threads, library versions, git commit, command and load: everything a reader needs to compare runs."""
    import torch

    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    info: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": rtvp.usable_cpus(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": rtvp.omp_wait_policy(),
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "rtvp": _version("rtvp"),
        "git_commit": (_git("rev-parse", "--short=12", "HEAD") or "unknown") + (" (dirty tree)" if dirty else ""),
        "command": command_line(),
    }
    return info


def command_line() -> str:
    """The exact command that started this process (relative to the repository root when possible)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).exists():
        try:
            argv[0] = str(Path(argv[0]).resolve().relative_to(REPO))
        except ValueError:
            pass
    return "python " + shlex.join(argv)


# ------------------------------------------------------------------------------------------------------------ tables
@dataclass
class Table:
    """One result table.

    Attributes:
        name: file stem of its CSV (``table_vii_open``).
        title: markdown heading.
        columns: column names.
        rows: cell values (``None`` prints as ``-``; floats with ``digits`` decimals).
        note: text printed under the table.
        digits: decimals of float cells.
    """

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""
    digits: int = 1

    def fmt(self, v: Any) -> str:
        """Display form of one cell."""
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.{self.digits}f}"
        return str(v)

    def markdown(self) -> str:
        """GitHub markdown table with its title and note."""
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(self.fmt(v) for v in row) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        """CSV text (floats at full precision, ``None`` as empty)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else (round(v, 4) if isinstance(v, float) else v) for v in row])
        return buf.getvalue()

    def print(self) -> None:
        """Print as a rich table."""
        from rich.console import Console
        from rich.table import Table as RichTable

        t = RichTable(title=self.title, caption=self.note or None, caption_justify="left")
        for c in self.columns:
            t.add_column(c, justify="right")
        for row in self.rows:
            t.add_row(*(self.fmt(v) for v in row))
        Console(width=max(120, min(200, 12 * len(self.columns) + 40))).print(t)


def rel(path: str | Path) -> str:
    """``path`` relative to the repository root when inside it (results never embed this machine's layout)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _relativize(text: str) -> str:
    return text.replace(str(REPO) + "/", "")


def pct(metrics: dict[str, Any] | None, key: str) -> float | None:
    """Metric as a percentage (the paper's unit); ``None`` when absent."""
    if not metrics:
        return None
    v = metrics.get(key)
    return None if v is None else 100.0 * float(v)


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` or ``None``."""
    return None if a is None or b in (None, 0) else a / b


# ------------------------------------------------------------------------------------------------------------- cells
@dataclass
class Cell:
    """One unit of work whose result is cached: ``fn()`` -> JSON-able dict, skipped when cached with ``config``."""

    key: str
    desc: str
    config: dict[str, Any]
    fn: Callable[[], dict[str, Any]]


def config_hash(config: Any) -> str:
    """Stable short hash of JSON-able data."""
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _cpu_times(stat: str = "/proc/stat") -> tuple[int, int] | None:
    """``(busy, total)`` jiffies of all CPUs from ``/proc/stat`` (None where it does not exist)."""
    try:
        with open(stat, encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cpus(interval: float = 0.5, stat: str = "/proc/stat") -> float | None:
    """How many CPUs other processes keep busy now: the busy share of ``/proc/stat`` over ``interval`` seconds, times
    the logical CPUs. None where ``/proc/stat`` does not exist.

    Unlike the 1-minute load average, it does not count a run that has just ended: a script chained after a training
    saw load ~2 on 2 cores and fell to 1 thread (the thirteenth session's CrackForest runs).
    """
    first = _cpu_times(stat)
    if first is None:
        return None
    time.sleep(interval)
    second = _cpu_times(stat)
    if second is None or second[1] <= first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * (os.cpu_count() or 1)


def default_threads(cores: int, busy: float | None, load: float | None) -> int:
    """Torch threads for ``--threads 0``: the usable ``cores`` other processes leave free (at least 1), judged by
    :func:`busy_cpus` (``busy``), else by the 1-minute ``load`` average (1 thread once it reaches ``cores``)."""
    if busy is not None:
        return max(1, min(cores, round(cores - busy)))
    return 1 if load is not None and load >= cores else cores


def build_parser(description: str) -> argparse.ArgumentParser:
    """Argument parser with the options every script shares."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny synthetic benchmark, tiny model, 1 epoch (< 2 min CPU)")
    p.add_argument("--tag", default=None, help="results/run sub-folder name (default: quick or full)")
    p.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS, help="caches, benchmarks and checkpoints")
    p.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS, help="where the tables are written")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads; 0 = the usable cores other processes leave free (at least 1)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--fresh", action="store_true", help="ignore cached cells (training runs are still reused)")
    return p


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and apply the process-wide settings (threads, offline text encoder)."""
    import torch

    args = parser.parse_args(None if argv is None else list(argv))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.threads <= 0:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        args.threads = default_threads(rtvp.usable_cpus(), busy_cpus(), load)
    torch.set_num_threads(args.threads)
    args.tag = args.tag or ("quick" if args.quick else "full")
    return args


class BenchRun:
    """Run folder + results folder of one script invocation, with cached cells and the final write-up."""

    def __init__(self, script: str, args: argparse.Namespace) -> None:
        self.script, self.args = script, args
        self.runs_root = Path(args.runs_dir)
        self.run_dir = self.runs_root / script / args.tag
        self.results_dir = Path(args.results_dir) / script / args.tag
        self.cells_dir = self.run_dir / "cells"
        self.machine = machine_info()
        self.results: dict[str, dict[str, Any]] = {}
        self.seconds: dict[str, float] = {}  # compute time of each cell (also of cached ones, from their record)
        self.fresh_cells = 0
        self.t0 = time.perf_counter()

    def cached(self, cell: Cell) -> dict[str, Any] | None:
        """The stored result of ``cell`` when it was computed with the same config."""
        path = self.cells_dir / f"{cell.key}.json"
        if self.args.fresh or not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if stored.get("config_hash") != config_hash(cell.config):
            return None
        self.seconds[cell.key] = float(stored.get("seconds", 0.0))
        return stored["result"]

    def run_cells(self, cells: Sequence[Cell]) -> dict[str, dict[str, Any]]:
        """Run (or load) every cell, printing ``[i/N]`` progress with an ETA; returns ``{key: result}``.

        (One status line per cell rather than a live bar: the trainer draws its own rich bar inside a cell, and
        rich allows a single live display at a time.)
        """
        from rich.console import Console

        from rtvp.fileio import atomic_write_text

        console, spent, ran = Console(), 0.0, 0
        for i, cell in enumerate(cells, start=1):
            result = self.cached(cell)
            if result is not None:
                console.print(f"[dim][{i}/{len(cells)}] {self.script}: {cell.desc} (cached)[/dim]")
            else:
                console.rule(f"[bold][{i}/{len(cells)}] {self.script}: {cell.desc}")
                t = time.perf_counter()
                result = cell.fn()
                took = time.perf_counter() - t
                record = {"key": cell.key, "desc": cell.desc, "config": cell.config,
                          "config_hash": config_hash(cell.config), "seconds": round(took, 2), "result": result}
                atomic_write_text(self.cells_dir / f"{cell.key}.json", json.dumps(record, indent=1, default=str))
                spent, ran = spent + took, ran + 1
                self.seconds[cell.key], self.fresh_cells = took, self.fresh_cells + 1
                left = sum(1 for c in cells[i:] if self.cached(c) is None)
                console.print(f"[green]done in {took:.0f} s[/green]; {left} cell(s) left, "
                              f"ETA ~{spent / ran * left / 60:.1f} min")
            self.results[cell.key] = result
        return self.results

    def write(self, tables: Sequence[Table], notes: Sequence[str] = (), extra: dict[str, Any] | None = None,
              files: dict[str, bytes] | None = None) -> Path:
        """Print the tables and write ``results.md``, ``<table>.csv`` and ``results.json`` (atomically, as a folder).

        Args:
            tables: the result tables.
            notes: paragraphs printed under the tables ("how to read", deviations from the paper).
            extra: more JSON-able data for ``results.json``.
            files: more files (name -> bytes), e.g. a PNG.

        Returns:
            The results folder.
        """
        from rtvp.bench.export import atomic_dir

        for t in tables:
            t.print()
        m = self.machine
        elapsed = time.perf_counter() - self.t0
        head = [f"# {self.script} ({self.args.tag})", "", "```", m["command"], "```", "",
                "| machine | |", "|---|---|"]
        for k in ("date_utc", "cpu", "logical_cpus", "usable_cpus", "torch_threads", "omp_wait_policy", "load_average",
                  "gpu",
                  "python", "torch", "numpy", "rtvp", "git_commit"):
            head.append(f"| {k} | {m.get(k)} |")
        head += ["", f"Cells: {len(self.results)} ({len(self.results) - self.fresh_cells} loaded from the cache); "
                 f"compute time of all cells: {sum(self.seconds.values()):.0f} s; wall time of this invocation: "
                 f"{elapsed:.0f} s.", ""]
        body = "\n".join(head) + "\n" + "\n".join(t.markdown() for t in tables)
        if notes:
            body += "\n## Notes\n\n" + "\n\n".join(notes) + "\n"
        payload = {"script": self.script, "tag": self.args.tag, "machine": m, "wall_s": round(elapsed, 1),
                   "tables": [{"name": t.name, "title": t.title, "columns": t.columns, "rows": t.rows,
                               "note": t.note} for t in tables],
                   "cells": self.results, "cell_seconds": self.seconds, **(extra or {})}
        self.results_dir.parent.mkdir(parents=True, exist_ok=True)
        with atomic_dir(self.results_dir, overwrite=True) as tmp:
            for t in tables:
                (tmp / f"{t.name}.csv").write_text(t.csv(), encoding="utf-8")
            for name, data in (files or {}).items():
                (tmp / name).write_bytes(data)
            text = json.dumps(payload, indent=1, default=str)
            (tmp / "results.json").write_text(_relativize(text), encoding="utf-8")
            (tmp / "results.md").write_text(_relativize(body), encoding="utf-8")
        print(f"results: {self.results_dir}/results.md")
        return self.results_dir
