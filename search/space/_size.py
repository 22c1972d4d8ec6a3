"""How big a space is, and its points one by one: the grid size, every configuration, and the
values a start-up design must try."""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.search.space._space import SearchSpace
from refiner_nas.search.space._yaml import SpaceError

ENUMERATE_LIMIT = 512  # spaces up to this many grid points are searched whole


def design_levels(space: SearchSpace) -> dict[str, set[Any]]:
    """Per sampled dimension, the values the start-up design tries: every choice of a categorical one, the
    two ends of a numeric one (the model takes numbers as a scaled feature, so the ends span it)."""
    levels: dict[str, set[Any]] = {}
    for dim in space.dimensions:
        if not dim.domain.sampled:
            continue
        values = dim.domain.values()
        if values is None:  # a continuous range
            values = [dim.domain.low, dim.domain.high]  # type: ignore[attr-defined]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        levels[dim.name] = {min(values), max(values)} if numeric else set(values)
    return levels


def design_size(space: SearchSpace) -> int:
    """Architectures in the start-up design: enough to try every level of the dimension with the most
    (at least two, so that the model has a slope to fit)."""
    return max([2, *(len(values) for values in design_levels(space).values())])


def grid_size(space: SearchSpace) -> float:
    """Points of the space's grid (infinite with a continuous range); conditional repeats included."""
    try:
        return math.prod(len(values) for values in space.grid().values())
    except SpaceError:
        return math.inf  # a continuous range


def enumerate_space(space: SearchSpace) -> list[tuple[dict[str, Any], ModelConfig]]:
    """Every distinct architecture of a finite space, as (trial params, configuration), in grid order.

    Optuna's brute-force sampler walks conditional dimensions without repeats.

    Raises:
        SpaceError: a continuous range (the space is not finite).
    """
    space.grid()  # raises on a continuous range
    found: list[tuple[dict[str, Any], ModelConfig]] = []

    def visit(trial: optuna.Trial) -> float:
        config = space.suggest(trial)
        found.append((dict(trial.params), config))
        return 0.0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # marked experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    study.optimize(visit)
    return found
