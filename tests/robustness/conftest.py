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
    """A two-image benchmark (``robust_helpers.toy_bench_at``)."""
    from robust_helpers import toy_bench_at

    return toy_bench_at(tmp_path / "bench")
