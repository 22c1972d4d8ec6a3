"""MO-ASHA's promotion and the hypervolume against brute force on small random point sets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import optuna
import pytest

from refiner_nas.search.objectives import parse_objectives
from refiner_nas.search.pareto import hypervolume
from refiner_nas.search.stoppers import (
    MultiObjectiveASHA,
    crowding_distance,
    is_promoted,
    promotion_order,
)


def brute_ranks(points: np.ndarray) -> list[int]:
    """Front numbers by peeling: a point is on the current front when no remaining point dominates it."""
    ranks, remaining, rank = [-1] * len(points), set(range(len(points))), 0
    while remaining:
        front = {i for i in remaining
                 if not any(np.all(points[j] <= points[i]) and np.any(points[j] < points[i]) for j in remaining)}
        for i in front:
            ranks[i] = rank
        remaining -= front
        rank += 1
    return ranks


def brute_hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Area (or volume) by testing every cell of the grid the coordinates make."""
    axes = [np.unique(np.append(points[:, d], reference[d])) for d in range(points.shape[1])]
    total = 0.0
    for cell in itertools.product(*(range(len(a) - 1) for a in axes)):
        low = np.array([axes[d][i] for d, i in enumerate(cell)])
        high = np.array([axes[d][i + 1] for d, i in enumerate(cell)])
        if np.any(np.all(points <= low, axis=1)):
            total += float(np.prod(high - low))
    return total


@pytest.mark.parametrize("seed", range(20))
def test_promotion_follows_brute_force_fronts_and_crowding(seed):
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 6, size=(int(rng.integers(2, 12)), 2)).astype(float)  # ties on purpose
    order = promotion_order(points)
    ranks = brute_ranks(points)
    assert sorted(order.tolist()) == list(range(len(points)))
    assert [ranks[i] for i in order] == sorted(ranks)
    for rank in set(ranks):
        members = [i for i in order if ranks[i] == rank]
        distance = crowding_distance(points[members])
        assert list(distance) == sorted(distance, reverse=True)
    for eta in (2, 3):
        keep = math.ceil(len(points) / eta)
        promoted = [i for i in range(len(points)) if is_promoted(points, i, eta)]
        assert sorted(promoted) == sorted(order[:keep].tolist())


@pytest.mark.parametrize("seed", range(10))
def test_hypervolume_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    dims = 2 if seed < 6 else 3
    points = rng.integers(0, 8, size=(int(rng.integers(1, 8)), dims)).astype(float)
    reference = np.full(dims, 8.0)
    assert hypervolume(points, reference) == pytest.approx(brute_hypervolume(points, reference))


def test_crowding_distance_of_a_line():
    points = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    assert crowding_distance(points).tolist() == [math.inf, 1.5, 1.5, math.inf]


def test_rungs_are_geometric_below_the_budget():
    objectives = parse_objectives("top1:max,params:min")
    assert MultiObjectiveASHA(objectives, max_epoch=5).rungs == [1, 3]
    assert MultiObjectiveASHA(objectives, max_epoch=5, reduction_factor=2).rungs == [1, 2, 4]
    with pytest.raises(ValueError, match="reduction_factor"):
        MultiObjectiveASHA(objectives, max_epoch=5, reduction_factor=1)


def _trial(number: int, curve: list[float], params: int, status: str = "trained") -> optuna.trial.FrozenTrial:
    trial = optuna.trial.create_trial(values=[curve[-1], params / 1e6], user_attrs={
        "status": status, "top1_curve": curve, "params": params, "macs": 0, "budget_key": "b"})
    trial.number = number
    return trial


def test_mo_asha_stops_a_dominated_trial_at_a_rung_and_keeps_a_cheap_one():
    stopper = MultiObjectiveASHA(parse_objectives("top1:max,params:min"), max_epoch=5)
    others = [_trial(0, [50, 60, 70, 75, 80], 1000), _trial(1, [40, 50, 60, 65, 70], 2000),
              _trial(2, [90, 90, 90], 100_000, status="duplicate")]  # duplicates do not compete
    # Three competitors at epoch 1 (two trials and this one): only the best ceil(3/3) = 1 goes on.
    assert stopper.stop_reason(others, number=3, epoch=1, top1=30, costs={"params": 0.003}, budget_key="b") == (
        "not in the best 1 of 3 trials at the epoch-1 rung (MO-ASHA)")
    assert stopper.stop_reason(others, number=3, epoch=1, top1=30, costs={"params": 0.0005}, budget_key="b") is None
    assert stopper.stop_reason(others, number=3, epoch=2, top1=0, costs={"params": 1.0}, budget_key="b") is None
    # Another budget's trials do not count: alone at the rung, it goes on.
    assert stopper.stop_reason(others, number=3, epoch=1, top1=0, costs={"params": 1.0}, budget_key="c") is None
