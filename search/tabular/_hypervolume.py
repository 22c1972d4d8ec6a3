"""Hypervolume of the architectures a search has fully trained, relative to the table's true front.

The true value of an architecture is its seed-mean final top-1 in the table (a search sees one seed's
curve), so 100 % means the search trained every architecture of the true front. Under a budget, only
the architectures within it count (a search never trains the others). The reference point is the worst
top-1 and worst cost of the architectures that count, the same for every search.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from refiner_nas.search.pareto import hypervolume
from refiner_nas.search.space import Budget
from refiner_nas.search.tabular._schema import BenchmarkTable

COST_COLUMNS = ("params", "macs")


def minimised_points(architectures: pd.DataFrame, cost: str) -> np.ndarray:
    """(architectures, 2): −mean top-1 and the cost, in the frame's row order."""
    if cost not in COST_COLUMNS:
        raise ValueError(f"cost {cost!r} is not one of {', '.join(COST_COLUMNS)}")
    return np.column_stack([-architectures["top1"].to_numpy(float), architectures[cost].to_numpy(float)])


def within_budget(architectures: pd.DataFrame, budget: Budget) -> np.ndarray:
    """Which rows of a table's architectures meet every limit of ``budget`` (a boolean mask)."""
    return np.array([
        all(excess <= 0 for excess in budget.constraint_values(
            params=int(row.params), macs=int(row.macs), latency_ms=float(row.latency_ms)).values())
        for row in architectures.itertuples()
    ], dtype=bool)


class HypervolumeTracker:
    """The hypervolume ratio of a growing set of trained architectures, for each cost in ``costs``,
    against the true front of the architectures within ``budget`` (all by default)."""

    def __init__(self, table: BenchmarkTable, costs: tuple[str, ...] = COST_COLUMNS, *,
                 budget: Budget | None = None) -> None:
        architectures = table.architectures
        if budget is not None:
            architectures = architectures[within_budget(architectures, budget)]
        self.position = {arch: index for index, arch in enumerate(architectures.index)}
        self.points = {cost: minimised_points(architectures, cost) for cost in costs}
        self.reference = {cost: points.max(axis=0) for cost, points in self.points.items()}
        self.true = {cost: hypervolume(points, self.reference[cost]) for cost, points in self.points.items()}
        self.found: set[int] = set()
        self.ratios = dict.fromkeys(costs, 0.0)

    def add(self, arch_id: str) -> None:
        """Count ``arch_id`` as trained and update the ratios (only when it is new).

        Raises:
            KeyError: an architecture the tracker does not measure (not in the table, or over budget).
        """
        index = self.position[arch_id]
        if index in self.found:
            return
        self.found.add(index)
        chosen = sorted(self.found)
        for cost, points in self.points.items():
            self.ratios[cost] = hypervolume(points[chosen], self.reference[cost]) / self.true[cost]
