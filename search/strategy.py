"""What ``auto`` means for a launch's strategy: which sampler, and whether trials stop early."""

from __future__ import annotations

from refiner_nas.search.settings import Sampler, SearchSettings
from refiner_nas.search.space import ENUMERATE_LIMIT, SearchSpace, grid_size


def resolve_sampler(settings: SearchSettings, space: SearchSpace) -> Sampler:
    """The sampler ``settings`` ask for; ``auto`` is the known-cost EHVI sampler on a space it can enumerate
    (its measured win, docs/benchmarks.md#search-strategies), TPE on a larger one (a random pool's costs would be
    counted afresh for every trial)."""
    if settings.sampler != "auto":
        return settings.sampler
    return "ehvi" if grid_size(space) <= ENUMERATE_LIMIT else "tpe"


def resolve_early_stop(settings: SearchSettings, space: SearchSpace) -> bool:
    """Whether trials stop early: ``--early-stop`` or ``--no-early-stop`` as given, by default where the
    sampler resolves to EHVI on several objectives (EHVI with ``promote``: the measured win,
    docs/benchmarks.md#pause-and-resume)."""
    if settings.early_stop is not None:
        return settings.early_stop
    return resolve_sampler(settings, space) == "ehvi" and len(settings.objective_list) >= 2
