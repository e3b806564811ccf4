"""The ``spot-edge`` command line (typer).

Each area's commands live in one module under ``cli/`` with its own :class:`CliApp`; this module
attaches them: the modules in :data:`TOP_LEVEL` give top-level commands (``spot-edge train``,
``spot-edge build-engine``...), those in :data:`GROUPS` a command group (``spot-edge pose maps``...).
"""

from __future__ import annotations

from importlib import import_module

import typer

from spot_edge import __version__
from spot_edge.cli.common import CliApp, guard_command
from spot_edge.cli.help_format import HelpCommand, HelpGroup

app = CliApp(
    name="spot-edge",
    help="SPOT visible-infrared person re-identification: train, export, build engines, run on cameras.",
    no_args_is_help=True,
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
GROUPS = ("model", "pose", "kernels", "visualize", "service")


def _register() -> None:
    """Attach each area's commands (one module per area under ``cli/``)."""
    for name in TOP_LEVEL + GROUPS:
        sub = import_module(f"spot_edge.cli.{name}").app
        if name in GROUPS:
            app.add_typer(sub, name=name)
        else:
            app.registered_commands.extend(sub.registered_commands)
            app.registered_groups.extend(sub.registered_groups)


def _adopt(typer_app: typer.Typer) -> None:
    """Every command, in groups too, reports errors as one line (``cli/common.py``) and lays out its
    help as the others do (``cli/help_format.py``), whichever app it was declared on."""
    for command in typer_app.registered_commands:
        if command.callback is not None:
            command.callback = guard_command(command.callback)
        if command.cls is None:
            command.cls = HelpCommand
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            if group.typer_instance.info.cls is None:
                group.typer_instance.info.cls = HelpGroup
            _adopt(group.typer_instance)


_register()
_adopt(app)


def main() -> None:
    app()
