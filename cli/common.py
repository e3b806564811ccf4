"""Shared CLI helpers: one console, one way to turn errors into a clean exit."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, Iterator

import typer
from rich.console import Console

console = Console(stderr=True)


class CliError(Exception):
    """An error the CLI reports as one line and exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn expected errors (bad input, missing files, mismatches) into ``error: ...`` and exit 2."""
    try:
        yield
    except (CliError, ValueError, FileNotFoundError, KeyError, RuntimeError, OSError) as exc:
        code = getattr(exc, "code", 2)
        message = str(exc) if not isinstance(exc, KeyError) else str(exc.args[0])
        console.print(f"[bold red]error:[/] {message}", highlight=False)
        raise typer.Exit(code if isinstance(code, int) else 2) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
