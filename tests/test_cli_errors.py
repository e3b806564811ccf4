"""Errors a person can act on, CLI-wide (cli/common.py): one plain line on stderr, exit codes.

The line is never wrapped at the terminal width when stderr is not a terminal, and user text is
never interpreted as rich markup (brackets print as they are).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from spot_edge.cli.common import CliApp, CliError, note, warn
from spot_edge.errors import InputError

LONG = "x" * 150 + " pip install 'spot-edge[tensorrt]' [/] [bold]not bold[/bold] " + "y" * 150


def _app(exc: BaseException) -> CliApp:
    demo = CliApp()

    @demo.command("fail")
    def fail() -> None:
        raise exc

    demo.command("other")(lambda: None)
    return demo


@pytest.mark.parametrize("exc,code,text", [
    (CliError(LONG), 2, LONG),
    (InputError(LONG), 2, LONG),
    (ValueError("bad value [red]kept[/red]"), 2, "bad value [red]kept[/red]"),
    (FileNotFoundError(2, "No such file or directory", "data/[/]"), 2,
     "[Errno 2] No such file or directory: 'data/[/]'"),
    (KeyError("no entry named '[x]'"), 2, "no entry named '[x]'"),
    (CliError("custom exit code", code=3), 3, "custom exit code"),
    (KeyboardInterrupt(), 130, "interrupted"),
    (ZeroDivisionError("boom"), 1, "internal error (ZeroDivisionError: boom)"),
])
def test_errors_are_one_plain_line(exc, code, text):
    result = CliRunner().invoke(_app(exc), ["fail"], env={"COLUMNS": "80"})
    assert result.exit_code == code
    lines = result.stderr.splitlines()
    assert lines == [f"error: {text}"] or (code == 1 and len(lines) == 1 and text in lines[0]), result.stderr
    assert "Traceback" not in result.output


def test_multi_line_messages_become_one_line():
    result = CliRunner().invoke(_app(ValueError("first line\n  second line")), ["fail"])
    assert result.exit_code == 2 and result.stderr == "error: first line second line\n"


def test_warnings_and_notes_are_one_plain_line(capsys):
    warn(LONG)
    note("identity [/] enrolled")
    err = capsys.readouterr().err
    assert err.splitlines() == [f"warning: {LONG}", "note: identity [/] enrolled"]


def test_real_process_error_line_is_not_wrapped(tmp_path):
    """The installed entry point, stderr a pipe (not a terminal), an 80-column environment."""
    long_name = "no-such-folder-" + "z" * 120
    done = subprocess.run([sys.executable, "-m", "spot_edge.cli.pose", "render", long_name, "out",
                           "--image-size", "288x144"], cwd=tmp_path, capture_output=True, text=True,
                          env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: keypoint folder not found: ")
    assert long_name in done.stderr


def test_tables_are_never_truncated_and_not_wrapped_in_a_pipe():
    import io

    from rich.console import Console
    from rich.table import Table

    from spot_edge.cli.common import print_table

    cell = "needs the tensorrt package and a CUDA GPU: pip install 'spot-edge[tensorrt]' [/]"
    for terminal in (False, True):
        out = io.StringIO()
        to = Console(file=out, width=80, markup=False, highlight=False, force_terminal=terminal, color_system=None)
        table = Table("setting", "choice", "why")
        table.add_row("embedder for a TensorRT engine", "tensorrt", cell)
        print_table(table, to)
        text = out.getvalue()
        assert "…" not in text and to.width == 80
        if terminal:   # fits the terminal, folded
            assert all(len(line) <= 80 for line in text.splitlines())
        else:          # a pipe or a log: one row per line, whole
            assert cell in text
