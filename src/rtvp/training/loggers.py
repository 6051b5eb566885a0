"""Logging hooks: ``results.csv`` (+ ``results.png``), TensorBoard scalars and rich progress bars (rank 0 only)."""

from __future__ import annotations

import csv
import io
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from rtvp.fileio import atomic_write_text
from rtvp.training.trainer import LOGGER, HookBase


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is at emit time (not the one it was created with).

    A handler created under a redirected stderr (a test's capture, a notebook cell) would otherwise keep writing to a
    stream that is closed later, and every message would become a "--- Logging error ---" traceback.
    """

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def console_logging(indent: str = "") -> None:
    """Show rtvp's INFO messages (loggers ``rtvp.*``: per-epoch summaries, warnings) on stderr, once per process."""
    log = logging.getLogger("rtvp")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(f"{indent}%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


class EpochMeans:
    """Running sums of the loss terms over an epoch's steps; :meth:`pop` returns their means and starts over."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, losses: dict[str, float]) -> None:
        """Accumulate one step's loss terms."""
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def pop(self) -> dict[str, float]:
        """Mean of every term over the steps added since the last call."""
        means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means

    def state_dict(self) -> dict[str, Any]:
        """The running sums and step count (checkpointed, so a mid-epoch resume keeps the whole epoch's mean)."""
        return {"sums": dict(self.sums), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.sums, self.count = dict(state["sums"]), int(state["count"])


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Top-level numeric entries of an evaluation result (nested breakdowns are skipped)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def current_lrs(optimizer: Any) -> dict[str, float]:
    """Learning rate of each named param group, one entry per component (``expert``, ``sam``, ``other``)."""
    out: dict[str, float] = {}
    for i, g in enumerate(optimizer.param_groups):
        out.setdefault(str(g.get("name", f"group{i}")).split("/")[0], float(g["lr"]))
    return out


class CSVLoggerHook(HookBase):
    """Writes one ``results.csv`` row per epoch (and ``results.png`` at the end).

    Columns: epoch, time, images/s, mean train loss terms, lr per group, scalar metrics of that epoch's
    evaluation. Rows live in the hook state, so a resumed run keeps a consistent file.

    Args:
        path: the CSV file (rewritten atomically every epoch).
        plot_path: where :func:`plot_results` draws the curves at the end (``None`` disables).
    """

    name = "csv"

    def __init__(self, path: Path, plot_path: Path | None = None) -> None:
        self.path, self.plot_path = Path(path), plot_path
        self.rows: list[dict[str, float]] = []
        self.means = EpochMeans()
        self._t0 = time.perf_counter()
        self._images = 0

    def before_epoch(self) -> None:
        """Start the epoch timer."""
        self._t0, self._images = time.perf_counter(), 0

    def after_step(self) -> None:
        """Accumulate the loss terms of the epoch."""
        self.means.add(self.trainer.last_losses)
        self._images += self.trainer.last_batch_size * self.trainer.dist.world_size

    def after_epoch(self) -> None:
        """Append the epoch row and rewrite the file."""
        t = self.trainer
        dt = time.perf_counter() - self._t0
        row: dict[str, float] = {"epoch": t.epoch + 1, "time_s": round(dt, 3),
                                 "images_per_s": round(self._images / dt, 3) if dt > 0 else 0.0}
        row.update({f"train/{k}": v for k, v in self.means.pop().items()})
        row.update({f"lr/{k}": v for k, v in current_lrs(t.optimizer).items()})
        if t.metrics_epoch == t.epoch:
            row.update({f"metrics/{k}": v for k, v in scalar_metrics(t.metrics).items()})
        self.rows.append(row)
        if t.dist.is_main:
            write_csv(self.rows, self.path)

    def after_train(self) -> None:
        """Draw ``results.png``."""
        if self.plot_path is not None and self.rows and self.trainer.dist.is_main:
            try:
                plot_results(self.rows, self.plot_path)
            except Exception as e:  # plotting must never fail a finished run
                LOGGER.warning("could not draw %s: %s", self.plot_path, e)

    def state_dict(self) -> dict[str, Any]:
        """All rows so far plus the running sums of the current epoch."""
        return {"rows": [dict(r) for r in self.rows], **self.means.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore rows and running sums."""
        self.rows = [dict(r) for r in state["rows"]]
        self.means.load_state_dict(state)


def write_csv(rows: list[dict[str, float]], path: Path) -> None:
    """Write rows (union of columns, first-seen order; missing cells empty) atomically."""
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (int(v) if k == "epoch" else f"{v:.6g}") for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def plot_results(rows: list[dict[str, float]], path: Path) -> None:
    """Loss terms and scalar metrics against epoch, one panel each (matplotlib Agg), saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k.startswith(("train/", "metrics/"))]
    if not keys:
        return
    cols = min(4, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        pts = [(r["epoch"], r[key]) for r in rows if key in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    from rtvp.fileio import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())


class TensorBoardHook(HookBase):
    """TensorBoard scalars on rank 0 (skipped when the tensorboard package is missing).

    Loss terms and lr every ``period`` steps, scalar metrics at every evaluation.

    Args:
        log_dir: event-file folder.
        period: step period of the train scalars.
    """

    name = "tensorboard"

    def __init__(self, log_dir: Path, period: int = 10) -> None:
        self.log_dir, self.period = Path(log_dir), period
        self.writer: Any = None

    def before_train(self) -> None:
        """Open the writer."""
        if not self.trainer.dist.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            LOGGER.warning("TensorBoard logging off (%s); `pip install tensorboard` to enable it", e)
            return
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def after_step(self) -> None:
        """Train scalars."""
        t = self.trainer
        if self.writer is None or t.step % self.period:
            return
        for k, v in t.last_losses.items():
            self.writer.add_scalar(f"train/{k}", v, t.step)
        for k, v in current_lrs(t.optimizer).items():
            self.writer.add_scalar(f"lr/{k}", v, t.step)

    def after_epoch(self) -> None:
        """Metric scalars of this epoch's evaluation."""
        t = self.trainer
        if self.writer is None or t.metrics_epoch != t.epoch:
            return
        for k, v in scalar_metrics(t.metrics).items():
            self.writer.add_scalar(f"metrics/{k}", v, t.epoch + 1)
        self.writer.flush()

    def after_train(self) -> None:
        """Close the writer."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ProgressHook(HookBase):
    """A rich progress bar per epoch (only on rank 0 and a TTY) and a one-line summary per epoch in the log.

    Args:
        enabled: force the bar on/off; ``None`` = on when stdout is a terminal.
    """

    name = "progress"

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = enabled
        self.progress: Any = None
        self.task: Any = None
        self.means = EpochMeans()

    def before_train(self) -> None:
        """Create the bar (if enabled)."""
        on = sys.stdout.isatty() if self.enabled is None else self.enabled
        if not (on and self.trainer.dist.is_main):
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), transient=False)
        self.progress.start()

    def before_epoch(self) -> None:
        """New bar for the epoch (resumed epochs start at their position)."""
        t = self.trainer
        if self.progress is not None:
            self.task = self.progress.add_task(f"epoch {t.epoch + 1}/{t.max_epochs}", total=t.iters_per_epoch,
                                               completed=t.epoch_iter, losses="")

    def after_step(self) -> None:
        """Advance and show the latest loss terms (the epoch summary shows their epoch means)."""
        self.means.add(self.trainer.last_losses)
        if self.progress is not None and self.task is not None:
            losses = " ".join(f"{k} {v:.3g}" for k, v in self.trainer.last_losses.items())
            self.progress.update(self.task, advance=1, losses=losses)

    def after_epoch(self) -> None:
        """Log the epoch summary: mean loss terms over the epoch's steps (as in results.csv), then the metrics."""
        t = self.trainer
        means = self.means.pop()
        if not t.dist.is_main:
            return
        losses = " ".join(f"{k} {v:.4g}" for k, v in means.items())
        metrics = ""
        if t.metrics_epoch == t.epoch:
            shown = {k: v for k, v in scalar_metrics(t.metrics).items() if k.startswith(("AP", "HM"))} or \
                dict(list(scalar_metrics(t.metrics).items())[:6])
            metrics = " | " + " ".join(f"{k} {v:.4f}" for k, v in shown.items())
        LOGGER.info("epoch %d/%d step %d | %s%s", t.epoch + 1, t.max_epochs, t.step, losses, metrics)

    def state_dict(self) -> dict[str, Any]:
        """The running loss sums of the current epoch (a resumed epoch's summary then covers all its steps)."""
        return self.means.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the running sums."""
        self.means.load_state_dict(state)

    def after_train(self) -> None:
        """Stop the bar."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
