"""The ``spot-edge`` command line (typer)."""

from __future__ import annotations

import typer

from spot_edge import __version__
from spot_edge.cli.common import guard_command

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


#: Modules whose commands sit at the top level (``spot-edge train``, ``spot-edge build-engine``...).
TOP_LEVEL = ("train", "engines", "run", "gallery", "bench", "doctor", "demo")
#: Modules that form a command group (``spot-edge pose maps``...).
GROUPS = ("model", "pose", "kernels", "visualize")


def _register() -> None:
    """Attach each area's commands (one module per area under ``cli/``)."""
    from importlib import import_module

    for name in TOP_LEVEL + GROUPS:
        try:
            module = import_module(f"spot_edge.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"spot_edge.cli.{name}":
                raise
            continue
        sub = module.app
        if name in GROUPS:
            app.add_typer(sub, name=name)
        else:
            app.registered_commands.extend(sub.registered_commands)
            app.registered_groups.extend(sub.registered_groups)


def _guard_all(typer_app: typer.Typer) -> None:
    """Every command's callback, in groups too, reports errors as one line (cli/common.py)."""
    for command in typer_app.registered_commands:
        if command.callback is not None:
            command.callback = guard_command(command.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _guard_all(group.typer_instance)


_register()
_guard_all(app)


def main() -> None:
    app()
