"""A tabular benchmark of a search space, and searches replayed against it.

The table (its file format: ``_schema``) holds every architecture of a grid space trained for the full
proxy budget with several seeds: learning curves, parameters, MACs, latency and time. ``_replay`` gives
the space and settings of a launch on it; the simulated backend
(``refiner_nas.search.evaluation.table_evaluator``) then reads each trial's curve from the table
instead of training, and ``_hypervolume`` measures a search against the table's true front. Building a
table and comparing strategies on it are benchmarks: ``refiner_nas.benchmarks.table_build``,
``refiner_nas.benchmarks.simulate``.
"""

from pathlib import Path

from refiner_nas.search.tabular._hypervolume import HypervolumeTracker
from refiner_nas.search.tabular._replay import (
    cached_table,
    simulated_launch_settings,
    table_settings,
    table_space,
    write_space,
)
from refiner_nas.search.tabular._schema import (
    COLUMNS,
    TABLE_VERSION,
    BenchmarkTable,
    TableSchemaError,
    read_table,
    write_table,
)

# The table shipped with the package: the `tabular` space on digits (docs/benchmarks.md#search-strategies).
SHIPPED_TABLE = Path(__file__).with_name("tabular_digits.parquet")

__all__ = [
    "COLUMNS",
    "SHIPPED_TABLE",
    "TABLE_VERSION",
    "BenchmarkTable",
    "HypervolumeTracker",
    "TableSchemaError",
    "cached_table",
    "read_table",
    "simulated_launch_settings",
    "table_settings",
    "table_space",
    "write_space",
    "write_table",
]
