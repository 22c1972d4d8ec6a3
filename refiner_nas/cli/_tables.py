"""Printing rows as a table: fitted to a terminal by wrapping headers and text (a value is never cut to
``…``), complete on one line per row in a pipe or a file."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Wide enough for any table we print; rich then sizes the table to its content.
_UNLIMITED_WIDTH = 10_000


def print_table(title: str, rows: Sequence[dict[str, Any]], text_columns: Sequence[str] = ()) -> None:
    """Print ``rows`` (same keys each) under ``title``; ``text_columns`` are left-aligned, numbers right.
    Values print as ``str`` gives them (round before), None as an empty cell."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=_UNLIMITED_WIDTH)
    if not rows:
        console.print(f"{title}: nothing to show")
        return
    cells = [[_cell(value) for value in row.values()] for row in rows]
    table = Table(title=title)
    for index, column in enumerate(rows[0]):
        text = column in text_columns
        # Numbers keep their full width (a header wraps above them); text wraps at spaces, else folds.
        longest = max(len(row[index]) for row in cells)
        table.add_column(column, justify="left" if text else "right", overflow="fold",
                         min_width=None if text else longest)
    for row in cells:
        table.add_row(*row)
    console.print(table)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def terminal_width() -> int | None:
    """The width of the terminal standard output is, or None in a pipe or a file (where a table is
    printed whole, one line per row)."""
    from rich.console import Console

    console = Console()
    return console.width if console.is_terminal else None
