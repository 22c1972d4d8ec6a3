"""Resuming paused trials: the sampler side of the ``promote`` stopper
(``refiner_nas.search.stoppers._rules.RungPromotion``).

Before each new trial, ``PromotingSampler`` asks the rule which paused trials pass it now. If one
does, the new trial takes that trial's parameters and is marked as its resumption (a system attribute the
trial runner reads), so it goes on from the paused trial's checkpoint instead of drawing an architecture.
If none does and the wrapped sampler models the rung (``ResumptionWeigher``, as EHVI does), it
weighs resuming the best paused trial against drawing a new architecture. Otherwise the wrapped sampler
draws as usual. Living in the sampler, promotion works wherever trials are
asked: a launch, its worker processes, ``search worker`` on other machines, a simulated search.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from refiner_nas.search.stoppers import RESUME_OF, RungPromotion


@runtime_checkable
class ResumptionWeigher(Protocol):
    """A sampler that can tell when resuming a paused trial is worth more than drawing a new architecture."""

    def worth_resuming(self, trials: Sequence[FrozenTrial], paused: Sequence[FrozenTrial],
                       completed: Sequence[FrozenTrial]) -> FrozenTrial | None: ...


class PromotingSampler(BaseSampler):
    """``base``, except that a new trial resumes the best paused trial the ``rule`` promotes, if any.
    ``architectures``: how many the space holds (infinite when unknown); once the study has tried them all,
    paused trials are resumed in the rule's order even if they do not pass it."""

    def __init__(self, base: BaseSampler, rule: RungPromotion, budget_key: str, *,
                 architectures: float = math.inf) -> None:
        self.base, self.rule, self.budget_key, self.architectures = base, rule, budget_key, architectures
        self._resumed: dict[int, dict[str, Any]] = {}  # trial id -> the paused trial's params

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if "fixed_params" not in trial.system_attrs:
            trials = study.get_trials(deepcopy=False)
            tried = {t.user_attrs.get("config_hash") for t in trials
                     if t.user_attrs.get("budget_key") == self.budget_key} - {None}
            promoted = self.rule.promotions(trials, self.budget_key, exhausted=len(tried) >= self.architectures)
            if not promoted and isinstance(self.base, ResumptionWeigher):
                weighed = self.base.worth_resuming(trials, *self.rule.paused_and_completed(trials, self.budget_key))
                promoted = [] if weighed is None else [weighed]
            if promoted:
                paused = promoted[0]
                self._resumed[trial._trial_id] = dict(paused.params)
                study._storage.set_trial_system_attr(trial._trial_id, RESUME_OF, paused.number)
                return
        self.base.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if trial._trial_id in self._resumed:
            return {}
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if trial._trial_id in self._resumed:
            return {}
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        params = self._resumed.get(trial._trial_id, {})
        if param_name in params:
            return params[param_name]
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._resumed.pop(trial._trial_id, None)
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


def resumed_trial(study: Study, trial_id: int) -> FrozenTrial | None:
    """The paused trial the trial ``trial_id`` was started to resume, or None."""
    number = study._storage.get_trial(trial_id).system_attrs.get(RESUME_OF)
    return None if number is None else study.get_trials(deepcopy=False)[number]
