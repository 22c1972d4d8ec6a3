"""Cost accounting (parameters, MACs, FLOPs) and speed benchmarks for the model family.

Public names are imported lazily, so that ``benchmarks.cli`` (and ``refiner-nas --help``) start without
torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Costs": "benchmarks.flops",
    "PartCosts": "benchmarks.flops",
    "UncountedOperatorError": "benchmarks.flops",
    "count_costs": "benchmarks.flops",
    "count_model": "benchmarks.flops",
    "CostCache": "benchmarks.cost_cache",
    "CachedCountError": "benchmarks.cost_cache",
    "SpeedSettings": "benchmarks.speed",
    "SpeedResult": "benchmarks.speed",
    "measure_speed": "benchmarks.speed",
    "reference_config": "benchmarks.speed",
    "measure_config_speed": "benchmarks.speed",
    "measure_fold": "benchmarks.fold",
    "measure_official": "benchmarks.official",
    "plain_reference": "benchmarks.official",
    "refiner_bandwidth": "benchmarks.bandwidth",
    "regress": "benchmarks.regress",
    "Stats": "benchmarks.timing",
    "largest_fitting_batch": "benchmarks.timing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'benchmarks' has no attribute {name!r}")
