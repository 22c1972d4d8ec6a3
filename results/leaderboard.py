"""The leaderboard as users see it: stored rows plus Table 7, filtered, sorted and rendered.

Computation returns DataFrames; ``render`` only formats one. Reported rows are labelled as such in
the ``kind`` and ``source`` columns and in every rendering's caption.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Literal

import pandas as pd

from refiner_nas.results.reference import reported_rows
from refiner_nas.results.schema import COLUMN_NAMES, DISPLAY_COLUMNS, KINDS, empty_frame

Format = Literal["table", "markdown", "csv", "html"]
FORMATS: tuple[str, ...] = ("table", "markdown", "csv", "html")
DEFAULT_SORT = "kind,-top1,-full_top1"
# Record statuses of proxy trials that hold no result of their own (shown with --all).
NOT_RESULTS = ("over_budget", "duplicate")
# Display columns in the order they give way when a terminal is too narrow for all (the first goes first).
NARROW_DROP_ORDER = ("config_hash", "flops_g", "throughput", "recipe", "state", "trial", "img_size", "status",
                     "epochs", "study", "dataset", "macs_g")
CAPTION = (
    "proxy: search trials, top1 on the search's proxy budget (dataset, epochs); full: full trainings "
    "(full_top1); reported: published figures from the Refiner paper's Table 7 (ImageNet top-1, MACs = the "
    "paper's FLOPs), not measured here"
)


class EmptyResultError(ValueError):
    """A selection that leaves no row; the message says what was asked."""


def with_reported(stored: pd.DataFrame) -> pd.DataFrame:
    """The stored rows followed by the Table 7 rows."""
    parts = [frame for frame in (stored, reported_rows()) if not frame.empty]
    return pd.concat(parts, ignore_index=True)


def select_rows(
    frame: pd.DataFrame,
    *,
    studies: Sequence[str] = (),
    kinds: Sequence[str] = KINDS,
    where: str | None = None,
) -> pd.DataFrame:
    """Rows of the given kinds; with ``studies``, only their proxy rows and the full trainings that belong
    to them (then ``where``); Table 7's reported rows are kept as the reference.

    A full training belongs to a study through the export it trained: its ``study`` column (the export's
    proxy study); one recorded without a study (a plain ModelConfig, ``leaderboard add --model``) belongs
    to each selected study that searched its architecture (the same ``config_hash``).

    ``where`` is a pandas expression over the columns, e.g. ``params_m <= 30 and dataset == 'digits'``;
    a row where it evaluates to NA is left out.

    Raises:
        ValueError: an unknown kind or study, or an expression that cannot be evaluated.
    """
    unknown_kinds = sorted(set(kinds) - set(KINDS))
    if unknown_kinds:
        raise ValueError(f"unknown row kind(s) {', '.join(unknown_kinds)}; choose from {', '.join(KINDS)}")
    selected = frame[frame["kind"].isin(list(kinds)).fillna(False).to_numpy(bool)]
    if studies:
        known = set(frame.loc[frame["kind"] == "proxy", "study"].dropna())
        missing = sorted(set(studies) - known)
        if missing:
            raise ValueError(
                f"no collected study {', '.join(repr(s) for s in missing)} "
                f"(collected: {', '.join(sorted(known)) or 'none'}); "
                "collect it with refiner-nas leaderboard --study NAME"
            )
        ours = selected["study"].isin(list(studies)).fillna(False)
        searched = selected.loc[selected["kind"].eq("proxy").fillna(False) & ours, "config_hash"].dropna()
        unlinked_full = selected["kind"].eq("full").fillna(False) & selected["study"].isna()
        keep = selected["kind"].eq("reported").fillna(False) | ours | (
            unlinked_full & selected["config_hash"].isin(set(searched)).fillna(False)
        )
        selected = selected[keep.to_numpy(bool)]
    if where:
        selected = selected[_where_mask(selected, where)]
    return selected.reset_index(drop=True)


def result_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows that are results of their own: without proxy trials that were never trained because they
    broke a budget (recorded with top-1 0), that repeat an earlier trial (a copy of its result) or that
    paused and were resumed by a later trial (whose row holds the whole curve)."""
    proxy = frame["kind"].eq("proxy").fillna(False)
    resumers = frame[proxy & frame["status"].eq("trained").fillna(False) & frame["resumed_from"].notna()]
    resumed = pd.MultiIndex.from_arrays([resumers["storage"], resumers["study"], resumers["resumed_from"]])
    own = pd.MultiIndex.from_arrays([frame["storage"], frame["study"], frame["trial"]])
    superseded = frame["status"].eq("paused").fillna(False) & own.isin(resumed)
    hidden = proxy & (frame["status"].isin(list(NOT_RESULTS)).fillna(False) | superseded)
    return frame[~hidden.to_numpy(bool)].reset_index(drop=True)


def _where_mask(frame: pd.DataFrame, where: str) -> pd.Series:
    try:
        mask = frame.eval(where)
    except Exception as error:  # pandas raises many types for a bad expression
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"cannot apply --where {where!r} ({reason}); use column names such as {', '.join(DISPLAY_COLUMNS[3:9])}, "
            "e.g. 'params_m <= 30 and top1 > 90'"
        ) from None
    if not isinstance(mask, pd.Series) or not (pd.api.types.is_bool_dtype(mask) or mask.isna().all()):
        raise ValueError(f"--where {where!r} is not a condition (true/false per row); e.g. 'params_m <= 30'")
    return mask.astype("boolean").fillna(False).to_numpy(bool)


def sort_rows(frame: pd.DataFrame, sort: str = DEFAULT_SORT) -> pd.DataFrame:
    """Sort by ``col,-col,...`` (``-``: descending), missing values last; ``kind`` sorts proxy, full,
    reported.

    Raises:
        ValueError: an unknown column.
    """
    keys, ascending = [], []
    for item in (part.strip() for part in sort.split(",")):
        if not item:
            continue
        name = item.lstrip("-+")
        if name not in frame.columns:
            raise ValueError(f"cannot sort by {name!r}: not a column; columns: {', '.join(frame.columns)}")
        keys.append(name)
        ascending.append(not item.startswith("-"))
    if not keys:
        return frame

    def order(column: pd.Series) -> pd.Series:
        if column.name == "kind":
            return column.map({kind: rank for rank, kind in enumerate(KINDS)})
        return column

    return frame.sort_values(keys, ascending=ascending, kind="stable", na_position="last", key=order).reset_index(
        drop=True
    )


def leaderboard_table(
    stored: pd.DataFrame,
    *,
    studies: Sequence[str] = (),
    where: str | None = None,
    sort: str = DEFAULT_SORT,
    top: int | None = None,
    reported: bool = True,
) -> pd.DataFrame:
    """What ``refiner-nas leaderboard`` shows: stored rows (and Table 7 unless ``reported`` is False),
    selected, sorted, and cut to the first ``top`` rows of each kind.

    Raises:
        EmptyResultError: nothing is left.
        ValueError: see ``select_rows`` and ``sort_rows``.
    """
    _check_top(top)
    frame = with_reported(stored) if reported else stored
    table = sort_rows(select_rows(frame, studies=studies, where=where), sort)
    if top is not None:
        table = table.groupby("kind", sort=False).head(top).reset_index(drop=True)
    if table.empty:
        raise EmptyResultError(
            "no leaderboard rows" + (f" match --where {where!r}" if where else "")
            + ("; collect a study first (refiner-nas leaderboard --study NAME)" if stored.empty else "")
        )
    return table


def check_query(
    *, where: str | None = None, sort: str = DEFAULT_SORT, top: int | None = None, fmt: str = "table",
    columns: str | None = None,
) -> list[str]:
    """Validate a whole leaderboard query against the schema before anything is collected or written (a
    query that fails leaves every file as it was); returns the chosen columns.

    Raises:
        ValueError: see ``leaderboard_table``, ``choose_columns`` and ``render``.
    """
    check_format(fmt)
    _check_top(top)
    sort_rows(empty_frame(), sort)
    check_where(where)
    return choose_columns(columns)


def check_where(where: str | None) -> None:
    """Evaluate ``where`` on Table 7's rows, which have every column, so that a bad expression is refused
    before anything is collected.

    Raises:
        ValueError: see ``select_rows``.
    """
    if where:
        _where_mask(with_reported(empty_frame()), where)


def check_format(fmt: str) -> None:
    """Raises ValueError: ``fmt`` is not one of ``FORMATS``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown --format {fmt!r}; choose from {', '.join(FORMATS)}")


def _check_top(top: int | None) -> None:
    if top is not None and top < 1:
        raise ValueError(f"--top {top} must be at least 1; give a positive number of rows per kind")


def choose_columns(columns: str | None) -> list[str]:
    """``None``: the display columns; ``all``; or a comma-separated list (validated)."""
    if columns is None:
        return list(DISPLAY_COLUMNS)
    if columns.strip() == "all":
        return list(COLUMN_NAMES)
    chosen = [name.strip() for name in columns.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in COLUMN_NAMES]
    if unknown or not chosen:
        named = ", ".join(unknown) or "(none given)"
        raise ValueError(f"unknown column(s) {named}; columns: {', '.join(COLUMN_NAMES)}")
    return chosen


def render(
    table: pd.DataFrame, fmt: str = "table", *, columns: Sequence[str] = DISPLAY_COLUMNS, title: str = "",
    width: int | None = None,
) -> str:
    """``table`` as text: a terminal table, Markdown, CSV or HTML (all with the caption but CSV). A
    terminal table given a ``width`` (a terminal's) fits it by leaving out columns rather than cutting
    values: first those empty in every row, then the least telling ones (``NARROW_DROP_ORDER``); the
    caption names what was left out."""
    check_format(fmt)
    shown = table.loc[:, list(columns)]
    if fmt == "csv":
        return shown.to_csv(index=False)
    text = shown.map(_cell)
    heading = f"{title}: " if title else ""
    if fmt == "markdown":
        return f"{text.to_markdown(index=False)}\n\n{heading}{CAPTION}\n"
    if fmt == "html":
        table_html = text.to_html(index=False, border=0)
        opening = table_html.index(">") + 1
        caption = f"<caption>{html.escape(heading + CAPTION)}</caption>"
        return f"{table_html[:opening]}\n  {caption}{table_html[opening:]}\n"
    caption = CAPTION
    if width is not None:
        text, left_out = _fit_columns(text, width)
        if left_out:
            caption += (f"; not shown at {width} columns: {', '.join(left_out)} (--columns chooses, --format csv "
                        "has them all)")
    return _rich_table(text, f"{heading}{len(shown)} rows", caption, width)


def _fit_columns(text: pd.DataFrame, width: int) -> tuple[pd.DataFrame, list[str]]:
    """``text`` without its empty columns and those a table ``width`` wide has no room for, and the names
    of the latter (an empty column has nothing to miss)."""
    empty = [column for column in text.columns if (text[column] == "").all()]
    left_out = [column for column in NARROW_DROP_ORDER if column in text.columns and column not in empty]
    kept = text.drop(columns=empty)
    while _table_width(kept) > width and left_out:
        kept = kept.drop(columns=left_out.pop(0))
    return kept, [column for column in text.columns if column not in kept.columns and column not in empty]


def _table_width(text: pd.DataFrame) -> int:
    """Characters a rich table of ``text`` needs with every header and value whole (3 per column for
    padding and rule, 1 for the closing rule)."""
    return 1 + sum(3 + max(len(column), *(len(value) for value in text[column])) for column in text.columns)


def _cell(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _rich_table(text: pd.DataFrame, title: str, caption: str, width: int | None) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption, caption_justify="left")
    for column in text.columns:
        numeric = column not in ("kind", "model", "config_hash", "dataset", "recipe", "study", "state", "source")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in text.itertuples(index=False):
        table.add_row(*row)
    buffer = io.StringIO()
    Console(file=buffer, width=width or _table_width(text), color_system=None).print(table)
    return buffer.getvalue()
