"""Pre-screening: before each trial, score K candidate architectures with a zero-cost proxy, train the best.

``PrescreenSampler`` wraps a launch's sampler. Before each trial it lets a fresh sampler of the same
kind propose K candidates on a scratch copy of the study (so the proposals follow the sampler's model, and
the real study records nothing of them), drops architectures the study already holds, scores the rest with
a ``ProxyScorer`` and makes the trial draw the best-scoring one. The wrapped sampler still sees every
trial (NSGA-II keeps its generations), only its values are replaced. The proxy's seconds are recorded in
the trial's ``prescreen_s``: they are not training epochs, but they are what pre-screening costs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.refiner_space.data import DataBundle
from refiner_nas.search.records import record_fields
from refiner_nas.search.settings import Proxy, SearchSettings
from refiner_nas.search.space import SearchSpace

if TYPE_CHECKING:
    from refiner_nas.search.evaluation import ArchitectureEvaluator

PROXY_BATCH = 64  # images in the one batch a proxy sees, as in `bench proxies`


class ProxyScorer:
    """One proxy's score of a configuration at initialisation (higher: predicted more accurate), computed
    once per architecture; ``memo`` may be shared between scorers of the same proxy, data and seed.

    The model's initialisation seed is fixed (not the search's), so an architecture always scores alike.
    """

    def __init__(
        self,
        proxy: Proxy,
        *,
        fit_to_data: Callable[[ModelConfig], tuple[ModelConfig, DataBundle]],
        count_params: Callable[[ModelConfig], int],
        seed: int = 0,
        memo: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self.proxy, self.fit_to_data, self.count_params, self.seed = proxy, fit_to_data, count_params, seed
        self.memo = {} if memo is None else memo  # config hash -> (score, seconds it took)

    def architecture(self, config: ModelConfig) -> str:
        """The hash trials record for ``config`` (fitted to the dataset's channels and classes)."""
        return self.fit_to_data(config)[0].config_hash()

    def __call__(self, config: ModelConfig) -> tuple[float, float]:
        """``(score, seconds)``: the seconds are those of the first computation, cached or not."""
        fitted, data = self.fit_to_data(config)
        key = fitted.config_hash()
        if key not in self.memo:
            started = time.perf_counter()
            value = float(self.count_params(fitted)) if self.proxy == "params" else self._zero_cost(fitted, data)
            self.memo[key] = (value, time.perf_counter() - started)
        return self.memo[key]

    def _zero_cost(self, config: ModelConfig, data: DataBundle) -> float:
        import torch

        from refiner_nas.search.samplers._zero_cost import score

        images, labels = next(iter(data.train.batches(batch_size=PROXY_BATCH, device=torch.device("cpu"),
                                                      shuffle=True, seed=self.seed)))
        return score(config, images, labels, seed=self.seed, proxies=[self.proxy])[self.proxy]


class PrescreenSampler(BaseSampler):
    """``base`` with each new trial's architecture chosen by pre-screening ``candidates`` proposals.

    ``proposer(seed)`` builds a sampler of ``base``'s kind for the scratch study. When every proposal is
    already in the study, ``base`` draws the trial as it would without pre-screening; so does an enqueued
    trial (a re-queued one keeps its architecture).
    """

    def __init__(self, base: BaseSampler, *, proposer: Callable[[int], BaseSampler], space: SearchSpace,
                 scorer: ProxyScorer, candidates: int, seed: int) -> None:
        if candidates < 1:
            raise ValueError(f"candidates={candidates} must be at least 1")
        self.base, self.proposer, self.space, self.scorer = base, proposer, space, scorer
        self.candidates = candidates
        self._rng = random.Random(seed)
        self._picks: dict[int, dict[str, Any]] = {}  # trial id -> the chosen architecture's params
        self._scored: set[str] = set()  # architectures this sampler paid a proxy for (its seconds count once)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)
        if "fixed_params" in trial.system_attrs:
            return
        started = time.perf_counter()
        trials = study.get_trials(deepcopy=False)
        known = {t.user_attrs.get("config_hash") for t in trials}
        proposals = self.propose(study.directions, trials)
        # The proposals' time, and each architecture's first scoring even when a shared memo answered it.
        spent = time.perf_counter() - started
        best: tuple[float, dict[str, Any]] | None = None
        for architecture, (params, config) in proposals.items():
            if architecture in known:
                continue
            value, seconds = self.scorer(config)
            if architecture not in self._scored:
                self._scored.add(architecture)
                spent += seconds
            if best is None or value > best[0]:
                best = (value, params)
        fields: dict[str, Any] = {"prescreen_s": spent}
        if best is not None:
            self._picks[trial._trial_id] = best[1]
            fields["prescreen_score"] = best[0]
        for key, value in record_fields(**fields).items():
            study._storage.set_trial_user_attr(trial._trial_id, key, value)

    def propose(self, directions: Sequence[optuna.study.StudyDirection],
                trials: Sequence[FrozenTrial]) -> dict[str, tuple[dict[str, Any], ModelConfig]]:
        """Up to ``candidates`` distinct architectures a fresh sampler proposes given the finished
        ``trials``, keyed by architecture hash: their params and configuration."""
        scratch = optuna.create_study(directions=list(directions), sampler=self.proposer(self._rng.randrange(2**31)))
        scratch.add_trials([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)])
        proposals: dict[str, tuple[dict[str, Any], ModelConfig]] = {}
        for _ in range(self.candidates):
            proposal = scratch.ask()  # left running: samplers with a constant liar spread the next ones out
            config = self.space.suggest(proposal)
            proposals.setdefault(self.scorer.architecture(config), (proposal.params, config))
        return proposals

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        values = self.base.sample_relative(study, trial, search_space)
        pick = self._picks.get(trial._trial_id, {})
        return {**values, **{name: value for name, value in pick.items() if name in search_space}}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        pick = self._picks.get(trial._trial_id, {})
        if param_name in pick:
            return pick[param_name]
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._picks.pop(trial._trial_id, None)
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
        self._rng.seed()


def with_prescreen(sampler: BaseSampler, settings: SearchSettings, space: SearchSpace,
                   evaluator: ArchitectureEvaluator, *, memo: dict[str, tuple[float, float]] | None = None
                   ) -> BaseSampler:
    """``sampler`` wrapped in pre-screening of ``settings.prescreen`` candidates by ``settings.proxy``
    (proposed by samplers of the launch's kind, costed by ``evaluator``); ``sampler`` itself when 0."""
    if not settings.prescreen:
        return sampler
    from refiner_nas.search.samplers._factory import make_sampler

    scorer = ProxyScorer(settings.proxy, fit_to_data=evaluator.fit_to_data,
                         count_params=lambda config: evaluator.count_costs(config).params, memo=memo)
    return PrescreenSampler(sampler, proposer=lambda seed: make_sampler(settings, space, seed=seed), space=space,
                            scorer=scorer, candidates=settings.prescreen, seed=settings.seed)
