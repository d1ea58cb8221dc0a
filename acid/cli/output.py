"""What the command line shows people: aligned tables and progress bars.

Progress bars (with a rate and an ETA) are drawn on standard error, and only
when it is a terminal: piped or redirected, the commands stay quiet.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

__all__ = ["progress", "table"]


class _Rate(ProgressColumn):
    """Items per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s")


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() else 200
    return Console(file=stream, width=wide, highlight=False, soft_wrap=False)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()
) -> None:
    """Print rows as an aligned table on standard output (no colour when piped)."""
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, name in enumerate(headers):
        t.add_column(name, justify="right" if i in right else "left", no_wrap=True)
    for row in rows:
        t.add_row(*("" if cell is None else str(cell) for cell in row))
    console = _console()
    need = console.measure(t, options=console.options.update_width(10_000)).maximum
    if need > console.width:  # a narrow terminal: let it wrap, never cut cells
        console = Console(
            file=console.file, width=need, highlight=False, soft_wrap=False
        )
    console.print(t)


@contextmanager
def progress(
    label: str, total: int | None, *, enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """A callback ``advance(n)`` that moves a bar on a terminal, else nothing."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda n: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=_console(stderr=True),
        transient=False,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
