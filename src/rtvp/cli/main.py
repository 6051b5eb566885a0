"""``rtvp`` command line: composition root #1. Each sub-command lives in its own module and stays thin."""

from __future__ import annotations

import typer

from rtvp import __version__

app = typer.Typer(
    name="rtvp",
    help="Open-vocabulary and closed-set industrial defect detection (MMIOC benchmark + RTVPNet).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rtvp {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Open-vocabulary and closed-set industrial defect detection."""


def _register() -> None:
    """Attach every command module. Modules import their heavy dependencies inside the commands."""
    from rtvp.cli import data as data_cli

    app.add_typer(data_cli.app, name="data")
    for name in ("info", "train", "val", "demo", "predict", "ground", "ask", "export", "serve"):
        try:
            module = __import__(f"rtvp.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name != f"rtvp.cli.{name}":
                raise
            continue
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point: turns rtvp's own errors into a one-line message and exit code 2."""
    from rtvp.errors import RtvpError

    try:
        app()
    except RtvpError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
