"""Which stopper (multi-objective) or pruner (single-objective) a launch's trials use."""

from __future__ import annotations

from collections.abc import Sequence

import optuna

from refiner_nas.search.objectives import Objective
from refiner_nas.search.settings import SearchSettings, Stopper
from refiner_nas.search.space import SearchSpace, design_size
from refiner_nas.search.stoppers._dominance import DominanceEarlyStop
from refiner_nas.search.stoppers._rules import DominanceStopper, EarlyStopper, MultiObjectiveASHA, RungPromotion
from refiner_nas.search.strategy import resolve_early_stop


def make_stopper(name: Stopper, objectives: Sequence[Objective], max_epoch: int, *,
                 min_population: int = 3) -> EarlyStopper:
    """The stopper ``name`` for a study's objectives and epoch budget (``min_population``: ``promote``'s)."""
    if name == "mo_asha":
        return MultiObjectiveASHA(objectives, max_epoch=max_epoch)
    if name == "promote":
        return RungPromotion(objectives, max_epoch=max_epoch, min_population=min_population)
    return DominanceStopper(DominanceEarlyStop(objectives))


def launch_stopper(settings: SearchSettings, space: SearchSpace) -> EarlyStopper | None:
    """How the launch's multi-objective trials stop early (None when they do not). ``promote`` compares
    nothing before the start-up design (or the whole launch, if shorter) reached its rung."""
    if not resolve_early_stop(settings, space):
        return None
    return make_stopper(settings.stopper, settings.objective_list, settings.epochs,
                        min_population=min(design_size(space), settings.trials))


def promotion_rule(settings: SearchSettings, space: SearchSpace) -> RungPromotion | None:
    """The ``promote`` stopper's rule when the launch pauses and resumes trials (``--early-stop --stopper
    promote``, several objectives), else None."""
    stopper = launch_stopper(settings, space)
    if not isinstance(stopper, RungPromotion) or len(settings.objective_list) < 2:
        return None
    return stopper


def make_pruner(settings: SearchSettings) -> optuna.pruners.BasePruner:
    """Epoch-level pruning for single-objective studies (multi-objective ones use the early stop)."""
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=settings.epochs)
    return optuna.pruners.NopPruner()
