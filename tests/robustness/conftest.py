"""Robustness suite (issue #19): hostile input at every entry point gets an rc-2 message, never a wrong answer."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest


@pytest.fixture
def rtvp_cli(capsys, monkeypatch) -> Callable[..., tuple[int, str]]:
    """Run ``rtvp ARGS`` through the console-script entry point; returns ``(exit code, stdout + stderr)``."""
    from rtvp.cli.main import main

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["rtvp", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return code, " ".join((out.out + out.err).split())  # rich/typer wrap long lines

    return run


@pytest.fixture
def toy_bench(tmp_path):
    """A two-image benchmark (one train, one val image; real PNGs, so a training run can start on it)."""
    from toybench import annotation, category, standard_splits, write_rgb, write_splits

    root = tmp_path / "bench"
    import numpy as np

    for name in ("a", "b"):
        write_rgb(root / "images" / f"{name}.png", np.full((64, 64, 3), 90, np.uint8))
    (root / "benchmark.yaml").write_text("name: toy\n")
    cats = [category(1, "scratch", "steel", "surface")]
    images = [{"id": i, "file_name": f"images/{n}.png", "width": 64, "height": 64} for i, n in ((1, "a"), (2, "b"))]
    anns = [annotation(1, 1, 1, (10, 10, 30, 30)), annotation(2, 2, 1, (20, 20, 40, 40))]
    write_splits(root, cats, images, anns, standard_splits([1, 2], anns, {2}, set()))
    return root
