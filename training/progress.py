"""Progress of a training run on the terminal: a rich progress bar with loss and throughput."""

from __future__ import annotations

from typing import Any

__all__ = ["Progress"]


class Progress:
    """A rich progress bar (silent when disabled); :meth:`log` prints above it."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None
        if enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._progress = RichProgress(TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
                                          MofNCompleteColumn(), TextColumn("{task.fields[info]}", markup=False),
                                          TimeElapsedColumn(), TimeRemainingColumn())

    def __enter__(self) -> "Progress":
        if self._progress:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress:
            self._progress.__exit__(*exc)

    def task(self, description: str, total: int) -> Any:
        return self._progress.add_task(description, total=total, info="") if self._progress else None

    def update(self, task: Any, info: str, advance: int = 1) -> None:
        if self._progress and task is not None:
            self._progress.update(task, advance=advance, info=info)

    def log(self, message: str) -> None:
        if self._progress:
            self._progress.console.print(message, markup=False, highlight=False, emoji=False, soft_wrap=True)
        elif self.enabled:
            print(message)
