"""Printing rows as a table: fitted to a terminal, complete (never cut to 80 columns) in a pipe or a file."""

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
    table = Table(title=title)
    for column in rows[0]:
        text = column in text_columns
        table.add_column(column, justify="left" if text else "right", no_wrap=text)
    for row in rows:
        table.add_row(*(_cell(value) for value in row.values()))
    console.print(table)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
