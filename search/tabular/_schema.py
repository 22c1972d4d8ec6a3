"""The benchmark table file: one row per (architecture, seed), its schema, and its provenance.

File: Parquet (columnar). Columns (``COLUMNS``):

- ``arch_id`` (string): the configuration hash (``ModelConfig.config_hash``), the key trials look rows up by
- ``space_params`` (string): the architecture's values of the space's dimensions, as JSON
- ``config`` (string): the full ``ModelConfig`` as JSON
- ``seed`` (int64): the training seed (the data split is the same for every row)
- ``top1_curve`` (list of float64): validation top-1 (%) after each epoch, ``epochs`` values
- ``top1`` (float64): the last value of the curve
- ``params``, ``macs`` (int64): parameters and multiply-accumulates of one image
- ``latency_ms`` (float64): batch-1 inference latency on the build machine (median of 10 runs)
- ``train_time_s``, ``wall_time_s`` (float64): time in the training loop, and for the whole evaluation

The Parquet key-value metadata ``refiner_nas.table`` holds the provenance as JSON: ``table_version``,
``space`` (name) and ``space_yaml`` (the file's text), ``dataset``, ``epochs``, ``seeds``, ``budget``
(the search settings results depend on), ``command``, ``build_seconds``, ``created`` and the package
and library versions (``refiner_nas.search.provenance``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TABLE_VERSION = 1
METADATA_KEY = b"refiner_nas.table"
COLUMNS: dict[str, str] = {
    "arch_id": "string", "space_params": "string", "config": "string", "seed": "int64", "top1_curve": "list",
    "top1": "float64", "params": "int64", "macs": "int64", "latency_ms": "float64", "train_time_s": "float64",
    "wall_time_s": "float64",
}
_PROVENANCE_KEYS = ("table_version", "space", "space_yaml", "dataset", "epochs", "seeds", "budget", "build_seconds")


class TableSchemaError(ValueError):
    """A table file that does not follow the schema above; the message names the column or key."""


@dataclass(frozen=True)
class BenchmarkTable:
    """A validated table: ``rows`` (one per architecture and seed) and ``provenance``."""

    rows: pd.DataFrame
    provenance: dict[str, Any]

    @property
    def epochs(self) -> int:
        return int(self.provenance["epochs"])

    @cached_property
    def architectures(self) -> pd.DataFrame:
        """One row per architecture, indexed by ``arch_id``: costs, ``space_params`` and ``top1`` (mean
        final top-1 over seeds), sorted by id so that positions are stable."""
        grouped = self.rows.groupby("arch_id", sort=True)
        return grouped.agg(space_params=("space_params", "first"), config=("config", "first"),
                           params=("params", "first"), macs=("macs", "first"), latency_ms=("latency_ms", "median"),
                           top1=("top1", "mean"), seeds=("seed", "nunique"))

    @cached_property
    def curves(self) -> dict[str, np.ndarray]:
        """Per architecture, its curves as a (seeds, epochs) array, seeds in increasing order."""
        ordered = self.rows.sort_values(["arch_id", "seed"])
        return {arch: np.stack([np.asarray(c, dtype=float) for c in group["top1_curve"]])
                for arch, group in ordered.groupby("arch_id", sort=True)}

    def mean_curves(self) -> np.ndarray:
        """(architectures, epochs): the seed-mean curve of each architecture, in ``architectures`` order."""
        return np.stack([self.curves[arch].mean(axis=0) for arch in self.architectures.index])


def validate_rows(rows: pd.DataFrame, epochs: int) -> None:
    """Check columns, types and curves against the schema.

    Raises:
        TableSchemaError: a missing or extra column, a wrong type, a curve of the wrong length, a
            repeated (architecture, seed), or a final top-1 that is not the curve's last value.
    """
    missing = [c for c in COLUMNS if c not in rows.columns]
    extra = [c for c in rows.columns if c not in COLUMNS]
    if missing or extra:
        raise TableSchemaError(f"table columns: missing {missing}, unexpected {extra}; expected {list(COLUMNS)}")
    if rows.empty:
        raise TableSchemaError("the table has no rows; build it with `refiner-nas bench table build`")
    for column, kind in COLUMNS.items():
        values = rows[column]
        if kind == "string" and not all(isinstance(v, str) for v in values):
            raise TableSchemaError(f"column {column!r} must hold strings")
        if kind in ("int64", "float64") and (not pd.api.types.is_numeric_dtype(values) or values.isna().any()):
            raise TableSchemaError(f"column {column!r} must hold {kind} values without gaps")
    lengths = rows["top1_curve"].map(len)
    if (lengths != epochs).any():
        raise TableSchemaError(f"column 'top1_curve': every curve needs {epochs} epochs (the table's 'epochs')")
    if rows.duplicated(["arch_id", "seed"]).any():
        raise TableSchemaError("columns 'arch_id', 'seed': an architecture appears twice with the same seed")
    last = rows["top1_curve"].map(lambda curve: float(curve[-1]))
    if not np.allclose(last.to_numpy(), rows["top1"].to_numpy(dtype=float)):
        raise TableSchemaError("column 'top1' must equal the last value of 'top1_curve'")


def write_table(rows: pd.DataFrame, provenance: dict[str, Any], path: str | Path) -> BenchmarkTable:
    """Validate and write ``rows`` with ``provenance`` (must hold ``_PROVENANCE_KEYS``) to a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    missing = [key for key in _PROVENANCE_KEYS if key not in provenance]
    if missing:
        raise TableSchemaError(f"table provenance lacks {missing}")
    validate_rows(rows, int(provenance["epochs"]))
    ordered = rows[list(COLUMNS)].sort_values(["arch_id", "seed"]).reset_index(drop=True)
    table = pa.Table.from_pandas(ordered, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           METADATA_KEY: json.dumps(provenance, sort_keys=True).encode()})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return BenchmarkTable(ordered, dict(provenance))


def read_table(path: str | Path) -> BenchmarkTable:
    """Read and validate a table file.

    Raises:
        FileNotFoundError: no such file; TableSchemaError: a file that breaks the schema or lacks provenance.
    """
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise FileNotFoundError(f"no table file {path}; build one with `refiner-nas bench table build`")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise TableSchemaError(f"{path}: no {METADATA_KEY.decode()!r} metadata; not a benchmark table")
    provenance = json.loads(raw)
    missing = [key for key in _PROVENANCE_KEYS if key not in provenance]
    if missing:
        raise TableSchemaError(f"{path}: table provenance lacks {missing}")
    if provenance["table_version"] != TABLE_VERSION:
        raise TableSchemaError(f"{path}: table_version {provenance['table_version']}, this code reads {TABLE_VERSION}")
    rows = table.to_pandas()
    rows["top1_curve"] = rows["top1_curve"].map(lambda curve: [float(v) for v in curve])
    validate_rows(rows, int(provenance["epochs"]))
    return BenchmarkTable(rows, provenance)
