"""The leaderboard's columns: one documented, versioned schema for every row, whatever its origin.

Three kinds of rows share it: ``proxy`` (a search trial, accuracy in ``top1``), ``full`` (a full
training, accuracy in ``full_top1``) and ``reported`` (a published figure from the paper's Table 7,
accuracy in ``full_top1``; never stored, added when a table is shown). ``dataset`` and ``epochs`` are
the budget of whichever accuracy the row holds.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

SCHEMA_VERSION = 1
LEADERBOARD_FILE = "leaderboard.parquet"

Kind = Literal["proxy", "full", "reported"]
KINDS: tuple[Kind, ...] = ("proxy", "full", "reported")

# name -> (pandas dtype, meaning). The order is the column order of every table.
COLUMNS: dict[str, tuple[str, str]] = {
    "kind": ("string", "proxy (search trial), full (full training) or reported (published, not measured here)"),
    "model": ("string", "readable architecture label, the name given to a full training, or the published name"),
    "config_hash": ("string", "refiner_space.ModelConfig.config_hash() of the architecture"),
    "params_m": ("float64", "parameters, millions"),
    "macs_g": ("float64", "multiply-accumulates of one image, billions (the paper's 'FLOPs' for reported rows)"),
    "flops_g": ("float64", "FLOPs of one image, billions (refiner_space.costs convention)"),
    "img_size": ("Int64", "input side in pixels (the height for rectangular inputs)"),
    "top1": ("float64", "proxy top-1 (%) after the search's last epoch"),
    "full_top1": ("float64", "top-1 (%) of a full training, or the published figure"),
    "dataset": ("string", "dataset of the row's accuracy"),
    "epochs": ("Int64", "training epochs of the row's accuracy"),
    "recipe": ("string", "full-training recipe (standard, advanced, released, or as given)"),
    "throughput": ("float64", "inference images/s on the search device, if measured"),
    "latency_ms": ("float64", "batch-1 latency (ms) on the search device, if measured"),
    "study": ("string", "Optuna study the row comes from"),
    "trial": ("Int64", "trial number within the study"),
    "storage": ("string", "where the study is stored (journal path or redacted URL)"),
    "state": ("string", "Optuna trial state (complete, pruned, fail, running, ...) or 'complete' for others"),
    "status": ("string", "trial record status (trained, duplicate, over_budget, ...)"),
    "feasible": ("boolean", "the trial kept every budget constraint"),
    "budget_key": ("string", "hash of the proxy budget: equal keys mean comparable proxy results"),
    "epochs_run": ("Int64", "epochs actually trained"),
    "duplicate_of": ("Int64", "trial whose result a duplicate trial reuses"),
    "resumed_from": ("Int64", "paused trial this trial went on from (its row then holds no result of its own)"),
    "attention": ("string", "attention variant"),
    "depth": ("Int64", "blocks"),
    "embed_dim": ("Int64", "embedding width"),
    "num_heads": ("Int64", "attention heads"),
    "seed": ("Int64", "training seed of a full training"),
    "wall_time_s": ("float64", "wall time of the trial or training, seconds"),
    "completed_at": ("string", "when the trial or training finished (ISO 8601, UTC)"),
    "source": ("string", "what produced the row: search, refiner-nas train, leaderboard add, a paper table"),
    "output": ("string", "full training: its output folder"),
    "config": ("string", "the full ModelConfig as JSON"),
    "provenance": ("string", "versions, git commit and device as JSON"),
    "row_key": ("string", "identity of the row: re-collecting replaces the row with the same key"),
    "schema_version": ("Int64", "version of this schema"),
}
COLUMN_NAMES: tuple[str, ...] = tuple(COLUMNS)
# What a table shows unless asked for other columns.
DISPLAY_COLUMNS: tuple[str, ...] = (
    "kind", "model", "config_hash", "params_m", "macs_g", "flops_g", "img_size", "top1", "full_top1", "dataset",
    "epochs", "recipe", "throughput", "study", "trial", "state", "status",
)


class SchemaError(ValueError):
    """A stored leaderboard written with another schema, or rows with unknown columns."""


def conform(rows: pd.DataFrame | list[dict[str, object]]) -> pd.DataFrame:
    """Rows as a frame with exactly the schema's columns, in order and typed (missing columns are NA).

    Raises:
        SchemaError: a column the schema does not know.
    """
    frame = pd.DataFrame(rows) if isinstance(rows, list) else rows
    unknown = sorted(set(frame.columns) - set(COLUMNS))
    if unknown:
        raise SchemaError(f"columns not in the leaderboard schema: {', '.join(unknown)}")
    frame = frame.reindex(columns=list(COLUMN_NAMES))
    frame["schema_version"] = SCHEMA_VERSION
    return frame.astype({name: dtype for name, (dtype, _) in COLUMNS.items()}).reset_index(drop=True)


def empty_frame() -> pd.DataFrame:
    return conform(pd.DataFrame(columns=list(COLUMN_NAMES)))
