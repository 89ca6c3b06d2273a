"""The terminal view: rich progress bars and tables for people, silence otherwise.

Everything shown here is also written to a file; nothing here is the record. rich is imported
only when something is shown, so that errors and help print at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def interactive() -> bool:
    """True when a person is watching: stderr is a terminal and we are not under CI."""
    if os.environ.get("RIEMEXP_QUIET") or os.environ.get("CI", "").lower() in ("1", "true"):
        return False
    return sys.stderr.isatty()


def console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def error(message: str) -> None:
    """Print one error message for a person, on stderr (always, terminal or not)."""
    print(f"riemexp: error: {message}", file=sys.stderr, flush=True)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Progress | None]:
    """A rich progress bar on a terminal; None (do nothing) otherwise."""
    if not interactive():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console(),
        transient=False,
    ) as progress:
        progress.add_task(description, total=total, status="")
        yield progress


def show_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Show a table on a terminal; do nothing otherwise."""
    if not interactive():
        return
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    console().print(table)


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
