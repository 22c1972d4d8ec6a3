"""A tabular benchmark of a search space, and searches replayed against it.

The table (:func:`build_table`, :func:`read_table`) holds every architecture of a grid space trained for
the full proxy budget with several seeds: learning curves, parameters, MACs, latency and time. The
simulated backend (:mod:`refiner_nas.search.tabular._backend`) lets a launch read each trial's curve from the table
instead of training, so strategies can be compared over many repetitions in seconds.
"""

from pathlib import Path

from refiner_nas.search.tabular._backend import (
    TableLookupError,
    TableTrainer,
    cached_table,
    simulated_launch_settings,
    table_evaluator,
    table_settings,
    table_space,
    write_space,
)
from refiner_nas.search.tabular._build import build_table, enumerate_space, partial_path
from refiner_nas.search.tabular._hypervolume import HypervolumeTracker
from refiner_nas.search.tabular._schema import COLUMNS, TABLE_VERSION, BenchmarkTable, TableSchemaError, read_table, write_table
from refiner_nas.search.tabular._simulate import Strategy, simulate_search

# The table shipped with the package: the `tabular` space on digits (README, "Search efficiency").
SHIPPED_TABLE = Path(__file__).with_name("tabular_digits.parquet")

__all__ = [
    "COLUMNS",
    "SHIPPED_TABLE",
    "TABLE_VERSION",
    "BenchmarkTable",
    "HypervolumeTracker",
    "Strategy",
    "TableLookupError",
    "TableSchemaError",
    "TableTrainer",
    "build_table",
    "cached_table",
    "enumerate_space",
    "partial_path",
    "read_table",
    "simulate_search",
    "simulated_launch_settings",
    "table_evaluator",
    "table_settings",
    "table_space",
    "write_space",
    "write_table",
]
