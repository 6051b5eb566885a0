"""``rtvp data synth | stats | export``: synthetic data, benchmark statistics, export to YOLO/COCO."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer


class ExportFormat(str, Enum):
    """Formats of ``rtvp data export``."""

    yolo = "yolo"
    yolo_seg = "yolo-seg"
    coco = "coco"


class Protocol(str, Enum):
    """Which split pair to export."""

    closed = "closed"
    open = "open"


_SHORT = {"instances": "inst", "images": "img", "supercategory": "super", "small": "S", "medium": "M",
          "large": "L", "defect-free": "empty", "train images": "train", "val images": "val", "classes": "cls",
          "open train images": "open train"}
"""Column headers shortened for the terminal (the full names are in report/stats.md)."""


def _rich_table(title: str, headers: list[str], rows: list[list[Any]]) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, h in enumerate(headers):
        numeric = bool(rows) and all(isinstance(r[i], (int, float)) for r in rows)
        table.add_column(h, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    return table


def synth(
    out: Path = typer.Option(..., "--out", help="Output folder (absent or empty)."),
    seed: int = typer.Option(0, help="Dataset seed; same arguments -> byte-identical files."),
    images: int = typer.Option(240, help="Number of pictures (spread over the 4 scenes)."),
    size: int = typer.Option(256, help="Picture side in pixels."),
    empty_fraction: float = typer.Option(0.1, help="Share of defect-free pictures."),
    overwrite: bool = typer.Option(False, help="Replace a non-empty --out."),
    preview: Path | None = typer.Option(None, help="Also write a PNG montage of the first 16 pictures with boxes."),
) -> None:
    """Render the procedural defect dataset (metal, wood, fabric, PCB) as per-scene COCO files."""
    from rich.console import Console

    from rtvp.bench.synth import montage, write_synth

    s = write_synth(out, seed=seed, images=images, size=size, empty_fraction=empty_fraction, overwrite=overwrite)
    console = Console()
    console.print(f"wrote {s.images} images ({s.empty_images} defect-free), {s.instances} instances, "
                  f"{len(s.per_class)} classes to {s.out} in {s.seconds:.1f} s")
    console.print(_rich_table("Instances per class", ["class", "instances"], [[k, v] for k, v in s.per_class.items()]))
    if preview is not None:
        console.print(f"preview: {montage(out, preview)}")
    console.print(f"next: rtvp data build configs/benchmarks/synth.yaml --root {out} --out <bench>")


def stats(
    bench: Path = typer.Argument(..., help="Benchmark folder."),
    write: bool = typer.Option(False, help="Also (re)write report/stats.md, report/longtail.png and the CSVs."),
) -> None:
    """Print the split, per-class and per-scene tables of a benchmark."""
    from rich.console import Console

    from rtvp.bench.stats import compute_stats, write_report

    st = compute_stats(bench)
    t = st.totals
    console = Console()
    console.print(f"[bold]{st.name}[/bold] {st.version}: {t['images']} images ({t['empty_images']} defect-free), "
                  f"{t['instances']} instances, {t['classes']} classes ({t['seen']} seen / {t['unseen']} unseen), "
                  f"{t['scenes']} scenes")
    console.print(_rich_table("Splits", ["split", "images", "instances", "classes"],
                              [[k, *v.values()] for k, v in st.splits.items()]))
    for table, drop in ((st.classes, {"scene", "supercategory"}), (st.scenes, {"small", "medium", "large"})):
        keep = [i for i, h in enumerate(table.headers) if h not in drop]
        headers = [_SHORT.get(table.headers[i], table.headers[i]) for i in keep]
        console.print(_rich_table(table.title, headers, [[row[i] for i in keep] for row in table.rows]))
    for warning in st.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if write:
        write_report(bench)
        console.print(f"wrote {Path(bench) / 'report'}")


def export(
    bench: Path = typer.Argument(..., help="Benchmark folder."),
    fmt: ExportFormat = typer.Option(
        ExportFormat.yolo, "--format", help="yolo (Ultralytics detect), yolo-seg (Ultralytics segment) or coco."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder (absent or empty)."),
    protocol: Protocol = typer.Option(Protocol.closed, help="closed: closed_{train,val}; open: open_{train,val}."),
    copy: bool = typer.Option(False, help="Copy the images instead of symlinking them."),
    overwrite: bool = typer.Option(False, help="Replace a non-empty --out."),
) -> None:
    """Export a benchmark so other tools can train on it (Ultralytics data.yaml + labels, or COCO)."""
    from rtvp.bench.export import export_benchmark

    path = export_benchmark(bench, out, fmt=fmt.value, protocol=protocol.value,
                            link="copy" if copy else "symlink", overwrite=overwrite)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add ``synth``, ``stats`` and ``export`` to the ``rtvp data`` app."""
    app.command("synth")(synth)
    app.command("stats")(stats)
    app.command("export")(export)
