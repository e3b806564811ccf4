"""The ``spot-edge`` command line (typer)."""

from __future__ import annotations

import typer

from spot_edge import __version__

app = typer.Typer(
    name="spot-edge",
    help="SPOT visible-infrared person re-identification: train, export, build engines, run on cameras.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"spot-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """SPOT visible-infrared person re-identification."""


def _register() -> None:
    """Attach each area's commands (one module per area under cli/)."""
    from spot_edge.cli import model

    app.add_typer(model.app, name="model")


_register()


def main() -> None:
    app()
