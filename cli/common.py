"""Shared CLI helpers: the consoles, one way to report an error, paths as users type them.

Errors: every command's callback runs inside :func:`friendly_errors` (attached once, in
``cli/app.py``), so an error a user can act on is one plain line ``error: ...`` on stderr and exit
code 2, whatever the command; an interruption (Ctrl-C) is one line and exit code 130; anything else
is reported as an internal error in one line (exit code 1) with the way to see the traceback
(``SPOT_EDGE_TRACEBACK=1``). Error lines are written as plain text: never wrapped at the
terminal width, never interpreted as rich markup (user text such as an identity named ``[/]``
prints as it is).

Consoles: :data:`console` (stderr) and :data:`stdout` never interpret markup either; style with
``style=`` arguments or :class:`rich.text.Text`.

Help: every :class:`CliApp` renders ``--help`` as plain text that re-flows to the terminal width,
with example command lines kept verbatim and nothing truncated (``cli/help_format.py``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table

from spot_edge.cli.help_format import HelpCommand, HelpGroup
from spot_edge.errors import SpotEdgeError
from spot_edge.paths import optional_user_path, user_path

__all__ = ["CliApp", "CliError", "console", "stdout", "friendly_errors", "guard_command", "error_line", "print_json",
           "print_table", "user_path", "optional_user_path", "warn", "note", "check_range", "USER_ERRORS"]

console = Console(stderr=True, markup=False, highlight=False, emoji=False)
stdout = Console(markup=False, highlight=False, emoji=False)

#: Exceptions that mean "the input or the environment is wrong", reported as one line, exit 2.
USER_ERRORS = (SpotEdgeError, ValueError, OSError, KeyError, LookupError, RuntimeError, ImportError)

TRACEBACK_ENV = "SPOT_EDGE_TRACEBACK"


class CliError(SpotEdgeError):
    """An error the CLI reports as one line and exit code ``code`` (default 2)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def error_line(message: str) -> None:
    """Write ``error: <message>`` as one plain line to stderr."""
    sys.stderr.write(f"error: {_one_line(message)}\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    """A one-line warning on stderr (not an error; the command goes on)."""
    console.print(f"warning: {_one_line(message)}", style="yellow", soft_wrap=True)


def note(message: str) -> None:
    """A one-line note on stderr."""
    console.print(f"note: {_one_line(message)}", style="cyan", soft_wrap=True)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    text = str(exc)
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return text or type(exc).__name__


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn errors into ``error: ...`` on stderr and an exit code (2 for a user's error, 130 for
    Ctrl-C, 1 for an internal error). ``typer.Exit``/``click`` exceptions pass through."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException, SystemExit):
        raise  # typer's own exits and usage errors (typer.BadParameter: exit 2 with the usage line)
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: nothing escapes as a traceback
        if os.environ.get(TRACEBACK_ENV):
            raise
        if isinstance(exc, USER_ERRORS):
            error_line(_message(exc))
            code = getattr(exc, "code", 2)
            raise typer.Exit(code if isinstance(code, int) and code > 0 else 2) from None
        error_line(f"internal error ({type(exc).__name__}: {_message(exc)}); this is a bug in spot-edge: "
                   f"rerun with {TRACEBACK_ENV}=1 for the traceback and report it")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        error_line("interrupted")
        raise typer.Exit(130) from None


def guard_command(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` run inside :func:`friendly_errors` (signature kept for typer)."""
    if getattr(callback, "__spot_edge_guarded__", False):
        return callback

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        with friendly_errors():
            return callback(*args, **kwargs)

    guarded.__spot_edge_guarded__ = True  # type: ignore[attr-defined]
    return guarded


class CliApp(typer.Typer):
    """``typer.Typer`` whose commands report errors through :func:`friendly_errors` (one line, exit 2),
    whether they are run from the ``spot-edge`` command or from this group's own app (tests), and
    whose help pages are plain text laid out by ``cli/help_format.py`` (paragraphs re-flow,
    examples verbatim, no markup, no truncation)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("add_completion", False)
        kwargs.setdefault("pretty_exceptions_enable", False)
        kwargs.setdefault("rich_markup_mode", None)
        kwargs.setdefault("cls", HelpGroup)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        kwargs.setdefault("cls", HelpCommand)
        register = super().command(*args, **kwargs)

        def decorator(callback: Callable[..., Any]) -> Callable[..., Any]:
            register(guard_command(callback))
            return callback

        return decorator


def check_range(name: str, value: Optional[float], minimum: Optional[float] = None,
                maximum: Optional[float] = None, above: Optional[float] = None) -> None:
    """Refuse an out-of-range option value (never clamp): ``--batch 0`` -> CliError, exit 2.

    ``minimum``/``maximum`` are inclusive bounds, ``above`` an exclusive lower bound
    (``--fps 0`` refused, ``--fps 0.5`` accepted); NaN is always refused.
    """
    if value is None:
        return
    if value != value:
        raise CliError(f"{name} must be a number, got nan")
    if above is not None and not value > above:
        raise CliError(f"{name} must be greater than {above:g}, got {value:g}")
    if minimum is not None and value < minimum:
        raise CliError(f"{name} must be at least {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise CliError(f"{name} must be at most {maximum:g}, got {value:g}")


#: The width tables are laid out at when the output is not a terminal (a pipe, a log file).
UNWRAPPED_WIDTH = 400


def print_table(table: Table, to: Console | None = None) -> None:
    """Print a rich table without losing text: cells fold instead of ending in '…'; on a terminal it
    fits the terminal's width, elsewhere (a pipe, a log) it takes its natural width, unwrapped."""
    to = to or console
    for column in table.columns:
        column.overflow = "fold"
    if to.is_terminal:
        to.print(table)
        return
    width = to.width
    to.width = max(width, UNWRAPPED_WIDTH)
    try:
        to.print(table, crop=False)
    finally:
        to.width = width


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def path_text(path: Path | str) -> str:
    """A path as shown to the user (relative to the working directory when inside it)."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
