"""Hypervolume of the architectures a search has fully trained, relative to the table's true front.

The true value of an architecture is its seed-mean final top-1 in the table (a search sees one seed's
curve), so 100 % means the search trained every architecture of the true front. The reference point is
the table's worst top-1 and worst cost, the same for every search.
"""

from __future__ import annotations

import numpy as np

from results.pareto import hypervolume
from search.tabular._schema import BenchmarkTable

COST_COLUMNS = ("params", "macs")


def minimised_points(table: BenchmarkTable, cost: str) -> np.ndarray:
    """(architectures, 2): −mean top-1 and the cost, in ``table.architectures`` order."""
    if cost not in COST_COLUMNS:
        raise ValueError(f"cost {cost!r} is not one of {', '.join(COST_COLUMNS)}")
    arch = table.architectures
    return np.column_stack([-arch["top1"].to_numpy(float), arch[cost].to_numpy(float)])


class HypervolumeTracker:
    """The hypervolume ratio of a growing set of trained architectures, for each cost in ``costs``."""

    def __init__(self, table: BenchmarkTable, costs: tuple[str, ...] = COST_COLUMNS) -> None:
        self.position = {arch: index for index, arch in enumerate(table.architectures.index)}
        self.points = {cost: minimised_points(table, cost) for cost in costs}
        self.reference = {cost: points.max(axis=0) for cost, points in self.points.items()}
        self.true = {cost: hypervolume(points, self.reference[cost]) for cost, points in self.points.items()}
        self.found: set[int] = set()
        self.ratios = dict.fromkeys(costs, 0.0)

    def add(self, arch_id: str) -> None:
        """Count ``arch_id`` as trained and update the ratios (only when it is new)."""
        index = self.position[arch_id]
        if index in self.found:
            return
        self.found.add(index)
        chosen = sorted(self.found)
        for cost, points in self.points.items():
            self.ratios[cost] = hypervolume(points[chosen], self.reference[cost]) / self.true[cost]
