"""``spot-edge service``: run ``spot-edge run`` as a systemd service."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from spot_edge.cli.common import CliApp, CliError, note, user_path
from spot_edge.service.systemd import DEFAULT_TARGET_DIR

app = CliApp(help="Run spot-edge run as a long-running systemd service.")

#: Options of ``spot-edge run`` that already keep it from drawing the live table.
_QUIET = ("-q", "--quiet", "--json")


def _check_run_arguments(args: list[str]) -> None:
    """Refuse arguments ``spot-edge run`` would refuse to parse (a typo found now, not at boot)."""
    from typer.main import get_command

    from spot_edge.cli import run as run_cli

    if "--help" in args:
        raise CliError("the run arguments ask for help; give the options of spot-edge run")
    command = get_command(run_cli.app)
    try:
        command.make_context("spot-edge run", list(args), resilient_parsing=False)
    except typer.TyperException as exc:  # click's usage errors (typer's own click)
        raise CliError(f"the run arguments do not parse: {exc.format_message()}") from None


@app.command("install")
def install(
    run_args: Optional[List[str]] = typer.Argument(
        None, metavar="RUN_ARGS", show_default=False, help="The spot-edge run options of the service, "
        "after --."),
    name: str = typer.Option("spot-edge", "--name", help="Unit name (<name>.service)."),
    user: Optional[str] = typer.Option(None, "--user", help="Account the service runs as (default: you, "
                                       "also under sudo)."),
    working_dir: Path = typer.Option(Path("."), "--working-dir", help="Working directory of the service "
                                     "(relative run arguments are relative to it)."),
    target_dir: Path = typer.Option(DEFAULT_TARGET_DIR, "--target-dir", help="Where the unit is written."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the unit instead of writing it."),
    force: bool = typer.Option(False, "--force", help="Replace an existing unit."),
) -> None:
    """Write a systemd unit that runs spot-edge run with the given options.

    The unit restarts the run when it ends with errors (Restart=on-failure:
    a camera given up, an output that failed), never after bad usage (exit
    code 2), stops it cleanly with SIGTERM (the gallery is saved), and runs
    it as --user in --working-dir. Writing to /etc/systemd/system needs
    root: use sudo, or --dry-run to print the unit and install it yourself.
    Then: sudo systemctl daemon-reload && sudo systemctl enable --now NAME.

    Examples:

      spot-edge service install --dry-run -- --visible 0 -m spot.onnx -g gal/

      sudo .venv/bin/spot-edge service install -- --visible 0 -m spot.onnx

      spot-edge service install --dry-run -- -m m.onnx --metrics-port 9400
    """
    from spot_edge.service.systemd import (
        UnitSpec,
        default_user,
        install_unit,
        present_groups,
        render_unit,
        spot_edge_executable,
    )

    args = list(run_args or [])
    if not args:
        raise CliError("give the spot-edge run options after --, e.g. "
                       "spot-edge service install --dry-run -- --visible 0 -m spot.onnx")
    if args[0] == "run":
        args = args[1:]
    _check_run_arguments(args)
    if not any(a in _QUIET for a in args):
        args.append("--quiet")  # no live table in the journal
    folder = user_path(working_dir)
    if not folder.is_dir():
        raise CliError(f"--working-dir {folder} is not a folder")
    spec = UnitSpec(name=name, user=user or default_user(), working_dir=folder,
                    command=[spot_edge_executable(), "run", *args], groups=present_groups())
    text = render_unit(spec)
    if "--metrics-port" not in args:
        note("no --metrics-port: add one to watch the service (Prometheus /metrics, /healthz)")
    if dry_run:
        typer.echo(text, nl=False)
        return
    path = install_unit(text, name, user_path(target_dir), force=force)
    note(f"wrote {path}; start it with: sudo systemctl daemon-reload && sudo systemctl enable --now {name}")


__all__ = ["app", "install"]
