"""Cost accounting (parameters, MACs, FLOPs) and speed benchmarks for the model family.

Public names are imported lazily, so that ``refiner_nas.benchmarks.cli`` (and ``refiner-nas --help``) start without
torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Costs": "refiner_nas.benchmarks.flops",
    "PartCosts": "refiner_nas.benchmarks.flops",
    "UncountedOperatorError": "refiner_nas.benchmarks.flops",
    "count_costs": "refiner_nas.benchmarks.flops",
    "count_model": "refiner_nas.benchmarks.flops",
    "CostCache": "refiner_nas.benchmarks.cost_cache",
    "CachedCountError": "refiner_nas.benchmarks.cost_cache",
    "SpeedSettings": "refiner_nas.benchmarks.speed",
    "SpeedResult": "refiner_nas.benchmarks.speed",
    "measure_speed": "refiner_nas.benchmarks.speed",
    "reference_config": "refiner_nas.benchmarks.speed",
    "measure_config_speed": "refiner_nas.benchmarks.speed",
    "measure_fold": "refiner_nas.benchmarks.fold",
    "measure_official": "refiner_nas.benchmarks.official",
    "plain_reference": "refiner_nas.benchmarks.official",
    "refiner_bandwidth": "refiner_nas.benchmarks.bandwidth",
    "regress": "refiner_nas.benchmarks.regress",
    "Stats": "refiner_nas.benchmarks.timing",
    "largest_fitting_batch": "refiner_nas.benchmarks.timing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'benchmarks' has no attribute {name!r}")
