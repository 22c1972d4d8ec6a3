"""The persisted leaderboard: one Parquet file in the results directory, updated by row key.

Upserting is idempotent: a row whose key is already stored replaces it (re-collecting a study updates
its running trials and adds new ones, never duplicates). Writes are atomic (temporary file, then
rename), so a reader never sees half a file. Every read-modify-write holds ``leaderboard_lock``, so two
collections into one results directory at once (two studies' jobs finishing together) lose no row.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from refiner_nas.results.schema import COLUMN_NAMES, LEADERBOARD_FILE, SCHEMA_VERSION, SchemaError, conform, empty_frame
from refiner_nas.search.storages import exclusive_lock

DEFAULT_RESULTS_DIR = Path("runs")
LOCK_FILE = LEADERBOARD_FILE + ".lock"


@dataclass(frozen=True)
class UpsertReport:
    """How many rows an upsert added, changed, or found already stored as they are."""

    added: int
    updated: int
    unchanged: int

    def __str__(self) -> str:
        return f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged"


def leaderboard_path(results_dir: Path) -> Path:
    return Path(results_dir) / LEADERBOARD_FILE


@contextmanager
def leaderboard_lock(results_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of the leaderboard in ``results_dir`` (an ``flock`` on a file beside it,
    released by the kernel if the holder dies) around a load, upsert and save.

    Raises:
        ValueError: the results directory cannot be created or the lock file opened.
    """
    path = Path(results_dir) / LOCK_FILE
    with ExitStack() as held:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(exclusive_lock(path))
        except OSError as error:
            raise ValueError(
                f"cannot write the leaderboard {leaderboard_path(results_dir)}: {error.strerror or error}; "
                "choose another --results-dir"
            ) from None
        yield


def load_leaderboard(results_dir: Path) -> pd.DataFrame:
    """The stored rows (an empty table when nothing is stored yet).

    Raises:
        SchemaError: the file was written with another schema version or is not a leaderboard.
    """
    path = leaderboard_path(results_dir)
    if not path.exists():
        return empty_frame()
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged or foreign file
        raise SchemaError(f"cannot read the leaderboard {path} ({error}); delete it and collect again") from None
    versions = set(frame.get("schema_version", pd.Series([None])).dropna().astype(int).tolist())
    if versions - {SCHEMA_VERSION} or "row_key" not in frame:
        raise SchemaError(
            f"{path} holds leaderboard schema version(s) {sorted(versions) or 'unknown'}, this version reads "
            f"{SCHEMA_VERSION}; move it away and collect the studies again"
        )
    return conform(frame)


def save_leaderboard(frame: pd.DataFrame, results_dir: Path) -> Path:
    """Write ``frame`` atomically.

    Raises:
        ValueError: the results directory cannot be created or written.
    """
    path = leaderboard_path(results_dir)
    partial = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conform(frame).to_parquet(partial, index=False)
        os.replace(partial, path)
    except OSError as error:
        raise ValueError(
            f"cannot write the leaderboard {path}: {error.strerror or error}; choose another --results-dir"
        ) from None
    return path


def upsert(stored: pd.DataFrame, rows: pd.DataFrame) -> tuple[pd.DataFrame, UpsertReport]:
    """``stored`` with ``rows`` added or replacing the stored rows with the same ``row_key``."""
    rows = conform(rows).drop_duplicates("row_key", keep="last")
    old = {key: _fingerprint(row) for key, row in zip(stored["row_key"], stored.to_dict("records"), strict=True)}
    added = updated = unchanged = 0
    for key, row in zip(rows["row_key"], rows.to_dict("records"), strict=True):
        if key not in old:
            added += 1
        elif old[key] == _fingerprint(row):
            unchanged += 1
        else:
            updated += 1
    kept = stored[~stored["row_key"].isin(set(rows["row_key"]))]
    merged = pd.concat([frame for frame in (kept, rows) if not frame.empty], ignore_index=True)
    merged = conform(merged if not merged.empty else empty_frame())
    merged = merged.sort_values(["kind", "study", "trial", "row_key"], kind="stable", na_position="last")
    return merged.reset_index(drop=True), UpsertReport(added, updated, unchanged)


def _fingerprint(row: dict[str, object]) -> str:
    def plain(value: object) -> object:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return None
        return value.item() if hasattr(value, "item") else value

    return json.dumps({name: plain(row.get(name)) for name in COLUMN_NAMES}, sort_keys=True, default=str)
