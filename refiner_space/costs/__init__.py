"""What a model of the family costs: counted (parameters, MACs, FLOPs under one convention, cached by
architecture) and measured (latency, throughput, peak memory, each next to a reference model).

The search imports it to know a candidate's costs before training; ``refiner-nas bench`` reports it.
Modules: ``_costs`` (what a count returns), ``_count`` (fvcore under the convention of ``_ops``), ``_cache`` (counts
kept by architecture), ``speed`` (throughput and latency), ``timing`` (timed repetitions, peak memory),
``bandwidth`` (a refiner's achieved memory bandwidth), ``environment`` (what a measurement ran on).
"""

from refiner_nas.refiner_space.costs._cache import CachedCountError, CostCache, counter_version, user_cache_file
from refiner_nas.refiner_space.costs._costs import Costs, PartCosts, UncountedOperatorError
from refiner_nas.refiner_space.costs._count import count_costs, count_model
from refiner_nas.refiner_space.costs.speed import (
    SpeedResult,
    SpeedSettings,
    measure_config_speed,
    measure_speed,
    reference_config,
)
from refiner_nas.refiner_space.costs.timing import Stats, largest_fitting_batch

__all__ = [
    "CachedCountError",
    "CostCache",
    "Costs",
    "PartCosts",
    "SpeedResult",
    "SpeedSettings",
    "Stats",
    "UncountedOperatorError",
    "count_costs",
    "count_model",
    "counter_version",
    "largest_fitting_batch",
    "measure_config_speed",
    "measure_speed",
    "reference_config",
    "user_cache_file",
]
