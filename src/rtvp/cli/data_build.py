"""``rtvp data build`` and ``rtvp data check``: thin wrappers over ``rtvp.bench``.

This module is the composition root that turns a text-encoder name into the embedding function the open split
needs (``rtvp.bench`` never imports torch); the encoder is imported lazily, only when the recipe asks for an
automatic unseen-class choice.
"""

from __future__ import annotations

from pathlib import Path

import typer

from rtvp.errors import ConfigError


def _embed_fn(name: str, path: Path | None = None):
    """``texts -> (N, D)`` numpy embeddings of text encoder ``name`` (weights ``path`` for clip / minilm).

    Embeddings are cached on disk (``default_cache_dir()``, ``$RTVP_CACHE_DIR`` overrides), so a rebuild never
    loads the model. One torch thread: the class list is tiny and extra threads only contend with the build.
    """
    import torch

    from rtvp.models.config import TextEncoderSpec
    from rtvp.models.text.spec import check_text_encoder, encoder_from_spec

    spec = TextEncoderSpec(name, path)
    check_text_encoder(spec, "--text-encoder")
    encoder = encoder_from_spec(spec)

    def embed(texts: list[str]):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return encoder.encode(texts).detach().cpu().numpy()
        finally:
            torch.set_num_threads(threads)

    return embed


def _print_summary(summary) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"benchmark {summary.out}", show_header=True)
    table.add_column("source")
    table.add_column("records", justify="right")
    for name, n in summary.per_source.items():
        table.add_row(name, str(n))
    console.print(table)
    splits = ", ".join(f"{k}: {v['images']} img / {v['annotations']} ann" for k, v in summary.splits.items())
    console.print(f"images {summary.images}, annotations {summary.annotations}, categories {summary.categories}")
    console.print(f"splits: {splits}")
    console.print(f"unseen: {', '.join(summary.unseen) or '-'}")
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    issues = ", ".join(f"{k}: {v}" for k, v in summary.issues.items()) or "none"
    console.print(f"issues: {issues}  (report/issues.csv)")
    resumed = f", {summary.cached} validations resumed from cache" if summary.cached else ""
    if summary.reused:
        console.print(f"resumed: {summary.reused} parsed records reused from an earlier interrupted build (recipe "
                      f"section and every label file unchanged); use --fresh to parse everything again")
    stages = ", ".join(f"{k} {t:.1f} s" for k, t in summary.timings.items())
    console.print(f"built in {summary.seconds:.1f} s ({summary.images_per_s:.0f} images/s{resumed}; {stages})")


def register(app: typer.Typer) -> None:
    """Add ``build`` and ``check`` to the ``rtvp data`` command group."""

    @app.command("build")
    def build(
        recipe: Path = typer.Argument(..., help="Recipe YAML (e.g. configs/benchmarks/mmioc-mini.yaml), or a dataset: "
                                      "YOLO data.yaml, COCO JSON or a folder holding one."),
        root: Path | None = typer.Option(None, "--root", help="Folder the recipe's source paths are relative to "
                                         "(default: the recipe's folder)."),
        out: Path = typer.Option(..., "--out", help="Benchmark folder to create (replaced atomically)."),
        images: Path | None = typer.Option(None, "--images", help="Image folder of a COCO JSON (if not beside it)."),
        scene: str | None = typer.Option(None, "--scene", help="Scene words of a dataset (default: its name)."),
        workers: int = typer.Option(1, "--workers", min=1, help="Processes for conversion and image checks."),
        strict: bool = typer.Option(False, "--strict", help="Fail on any validation issue."),
        text_encoder: str = typer.Option("minilm", "--text-encoder", help="Encoder for the unseen-class choice."),
        text_encoder_path: Path | None = typer.Option(None, "--text-encoder-path",
                                                      help="Local weights of --text-encoder (clip needs one)."),
        fresh: bool = typer.Option(False, "--fresh", help="Ignore the state of an earlier interrupted build."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Build a benchmark (COCO annotations, images, report) from a recipe or a dataset.

        Example: rtvp data build configs/benchmarks/mmioc-mini.yaml --root ../shared/datasets --out runs/mmioc-mini
        (or a dataset directly: rtvp data build my_parts/data.yaml --out runs/my_parts)
        """
        from rtvp.bench.build import build_benchmark, check_out
        from rtvp.bench.implicit import dataset_recipe

        check_out(out)  # before the recipe, the encoder and the build
        given = dataset_recipe(recipe, images, scene)
        if given is None:
            raise ConfigError(f"{recipe} is already a built benchmark; give a recipe YAML or a dataset to build")
        spec = given.recipe
        needs_encoder = not spec.split.unseen_classes and spec.split.unseen_fraction > 0
        embed = _embed_fn(text_encoder, text_encoder_path) if needs_encoder else None
        summary = build_benchmark(spec, root if root is not None else given.root, out, workers=workers,
                                  strict=strict, embed=embed, text_encoder=text_encoder if needs_encoder else "",
                                  progress=not quiet, fresh=fresh)
        _print_summary(summary)

    @app.command("check")
    def check(bench: Path = typer.Argument(..., help="Benchmark folder to re-validate.")) -> None:
        """Re-validate a built benchmark; exit 1 with a listing when something is wrong."""
        from rtvp.bench.check import check_benchmark

        problems = check_benchmark(bench)
        if problems:
            for line in problems:
                typer.echo(line)
            typer.secho(f"{bench}: {len(problems)} problem(s)", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        typer.echo(f"{bench}: ok")
