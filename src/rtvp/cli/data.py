"""``rtvp data ...`` commands. Each group of commands lives in its own module and registers itself here."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build, inspect, export and annotate MMIOC benchmarks.", no_args_is_help=True)

for _name in ("data_build", "data_tools", "data_annot"):
    try:
        _module = __import__(f"rtvp.cli.{_name}", fromlist=["register"])
    except ModuleNotFoundError as _e:
        if _e.name != f"rtvp.cli.{_name}":
            raise
        continue
    _module.register(app)
