"""Expected hypervolume improvement with exact costs: the sampler that knows what an architecture costs.

Parameters and MACs are fixed by a configuration before anything is trained, yet TPE, NSGA-II and GP
treat them as outcomes to learn. ``KnownCostSampler`` counts them for every candidate and models
only what training measures (top-1, latency). It starts with a small design that tries every value of
every dimension (``design_levels``), cheapest architecture first, then models each measured objective
as a sum of per-value effects (Bayesian linear regression on one-hot choices and scaled numbers), so
that a few trials inform every architecture that shares a value with them. It trains the candidate
whose expected hypervolume improvement over the front found so far is largest (Monte-Carlo, exact in
the known objectives). Candidates over a known cost limit (``max_params``, ``max_macs``) are never
proposed, and an architecture the study already holds is never proposed again.

The candidates are the whole space when it has at most ``ENUMERATE_LIMIT`` points, otherwise
``pool`` random draws per trial. Trials running in other workers count as found at their predicted
values (a Kriging believer), so workers spread out.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.search.objectives import Objective
from refiner_nas.search.pareto import hypervolume_improvements
from refiner_nas.search.space import (
    ENUMERATE_LIMIT,
    Budget,
    SearchSpace,
    SpaceError,
    design_levels,
    design_size,
    enumerate_space,
    grid_size,
)

# Objectives a configuration fixes before training (in the evaluator's units: params in M, MACs in G).
KNOWN_COSTS = ("params", "macs")
_PICK = "known_cost_pick"  # a running trial's chosen params, in its system attributes
# The hash trials record for a configuration, and its known cost values keyed by objective name.
ArchitectureOf = Callable[[ModelConfig], str]
CostsOf = Callable[[ModelConfig], dict[str, float]]


@dataclass(frozen=True)
class Candidate:
    """One architecture the sampler may propose: the trial params that draw it, its hash, its costs."""

    params: dict[str, Any]
    architecture: str
    costs: dict[str, float]


class KnownCostSampler(BaseSampler):
    """Propose the untried architecture with the largest expected hypervolume improvement.

    Args:
        space: the launch's space (its budget's parameter and MAC limits filter candidates).
        objectives: the launch's objectives, in order.
        architecture_of: the hash trials record for a configuration (cheap; called for every draw).
        costs_of: a configuration's known cost values (see ``KNOWN_COSTS``); once per architecture.
        pool: candidates drawn per trial when the space is too large to enumerate.
        samples: Monte-Carlo draws of the modelled objectives per candidate.
        fidelity_epoch: model top-1 after this epoch instead of at the end of training, learning from
            every trial that got that far (for the ``promote`` stopper, which pauses trials there).
    """

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], *, architecture_of: ArchitectureOf,
                 costs_of: CostsOf, seed: int, pool: int = 32, samples: int = 128,
                 fidelity_epoch: int | None = None) -> None:
        if pool < 1 or samples < 1:
            raise ValueError(f"pool={pool} and samples={samples} must be at least 1")
        self.space, self.objectives = space, list(objectives)
        self.architecture_of, self.costs_of = architecture_of, costs_of
        self.pool, self.samples = pool, samples
        self.levels, self.design_size = design_levels(space), design_size(space)
        # The design tries the cheapest architectures first, in the launch's first known cost.
        self.design_cost = next((o.name for o in self.objectives if o.name in KNOWN_COSTS), "params")
        self.fidelity_epoch = fidelity_epoch
        self._rng = random.Random(seed)
        self._fallback = RandomSampler(seed=seed)
        self._picks: dict[int, dict[str, Any]] = {}
        self._described: dict[str, Candidate] = {}  # config hash -> candidate, counted once
        self._whole: list[Candidate] | None = None

    # What Optuna calls.

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs:
            return  # an enqueued or re-queued trial keeps its architecture
        ranked = self.ranking(study.get_trials(deepcopy=False))
        # Other workers may have picked while this one ranked: take the best one still free. The pick is
        # written before this trial draws its params, so the next workers see it too.
        taken = self._tried(study.get_trials(deepcopy=False))
        pick = next((c for c in ranked if c.architecture not in taken), None)
        if pick is not None:
            self._picks[trial._trial_id] = pick.params
            study._storage.set_trial_system_attr(trial._trial_id, _PICK, pick.params)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        pick = self._picks.get(trial._trial_id, {})
        if param_name in pick:
            return pick[param_name]
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._picks.pop(trial._trial_id, None)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._fallback.reseed_rng()

    # The choice.

    def ranking(self, trials: Sequence[FrozenTrial]) -> list[Candidate]:
        """The architectures not yet in the study, best first given its ``trials``: the design's order for
        its first ``design_size`` architectures, then by expected improvement (random order when the
        model has fewer than two observations or no candidate is expected to improve the front)."""
        tried = self._tried(trials)
        candidates = [c for c in self.candidates() if c.architecture not in tried]
        self._rng.shuffle(candidates)  # ties go to a random one
        if len(tried - {None}) < self.design_size:
            return self._design_order(trials, candidates)
        finished, observed = self.observations(trials)
        if len(finished) < 2 or not candidates:
            return candidates
        gains = self.expected_improvements(finished, observed, self._running(trials), candidates)
        if gains.max() <= 0.0:
            return candidates
        return [candidates[index] for index in np.argsort(-gains, kind="stable")]

    def candidates(self) -> list[Candidate]:
        """The whole space when it is small enough, else ``pool`` random draws; over-limit ones left out."""
        if self._whole is None and grid_size(self.space) <= ENUMERATE_LIMIT:
            self._whole = self._within_limits(
                [self._candidate(params, config) for params, config in enumerate_space(self.space)])
        if self._whole is not None:
            return self._whole
        scratch = optuna.create_study(sampler=RandomSampler(seed=self._rng.randrange(2**31)))
        drawn: dict[str, Candidate] = {}
        for _ in range(self.pool):
            proposal = scratch.ask()
            config = self.space.suggest(proposal)  # draws the params
            candidate = self._candidate(proposal.params, config)
            drawn.setdefault(candidate.architecture, candidate)
        return self._within_limits(list(drawn.values()))

    def observations(self, trials: Sequence[FrozenTrial]) -> tuple[list[FrozenTrial], np.ndarray]:
        """The trials the model learns from and their objective values (trials × objectives): the
        trained ones' results, or with ``fidelity_epoch`` every trial's top-1 after that epoch."""
        if self.fidelity_epoch is None:
            finished = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("status") == "trained"]
            return finished, np.array([t.values for t in finished], dtype=float).reshape(-1, len(self.objectives))
        from refiner_nas.search.records import NOT_COMPETING, record_costs

        reached = [t for t in trials if len(t.user_attrs.get("top1_curve") or ()) >= self.fidelity_epoch
                   and t.user_attrs.get("status") not in NOT_COMPETING]
        rows = [{**record_costs(t.user_attrs), "top1": t.user_attrs["top1_curve"][self.fidelity_epoch - 1]}
                for t in reached]
        return reached, np.array([[row[o.name] for o in self.objectives] for row in rows],
                                 dtype=float).reshape(-1, len(self.objectives))

    def worth_resuming(self, trials: Sequence[FrozenTrial], paused: Sequence[FrozenTrial],
                       completed: Sequence[FrozenTrial]) -> FrozenTrial | None:
        """Of the ``paused`` trials, the one whose value at ``fidelity_epoch`` adds the most to the
        hypervolume of the ``completed`` trials' values there, if that is more than any untried architecture
        is expected to add (either way, the epochs after the rung are to be trained); else None, as during
        the design or without a fidelity epoch."""
        tried = self._tried(trials)
        if self.fidelity_epoch is None or not paused or len(tried - {None}) < self.design_size:
            return None
        finished, observed = self.observations(trials)
        reached, points = self.observations(paused)
        if len(finished) < 2 or not reached:
            return None
        candidates = [c for c in self.candidates() if c.architecture not in tried]
        gains = self.expected_improvements(finished, observed, self._running(trials), candidates,
                                           front=self.observations(completed)[1], exact=points)
        best = int(np.argmax(gains[len(candidates):]))
        if gains[len(candidates) + best] > max(gains[: len(candidates)], default=0.0):
            return reached[best]
        return None

    def expected_improvements(self, finished: Sequence[FrozenTrial], observed: np.ndarray,
                              running: Sequence[Candidate], candidates: Sequence[Candidate], *,
                              front: np.ndarray | None = None, exact: np.ndarray | None = None) -> np.ndarray:
        """Monte-Carlo expected hypervolume improvement of each candidate (all objectives minimised) over
        ``front`` (values, rows × objectives; by default the ``finished`` trials' ``observed`` values, which
        the model learns from) and the running trials at their predicted values; then the improvement of
        each row of ``exact`` (values known without a model), over the same front and reference."""
        signs = np.array([1.0 if o.direction == "minimize" else -1.0 for o in self.objectives])
        observed = observed * signs
        known_points = np.zeros((0, len(self.objectives))) if exact is None else exact * signs
        known = [index for index, o in enumerate(self.objectives) if o.name in KNOWN_COSTS]
        modelled = [index for index in range(len(self.objectives)) if index not in known]
        seen = [self._candidate_of(t.params) for t in finished]
        features = _features([c for c in seen if c is not None] + list(running) + list(candidates))
        usable = [index for index, c in enumerate(seen) if c is not None]
        train_x = features[: len(usable)]
        others_x = features[len(usable):]
        draws = np.random.default_rng(self._rng.randrange(2**31)).standard_normal((self.samples, len(modelled)))
        means = np.zeros((len(others_x), len(self.objectives)))
        spreads = np.zeros_like(means)
        for index in modelled:
            means[:, index], spreads[:, index] = _posterior(train_x, observed[usable, index], others_x)
        for index in known:
            name = self.objectives[index].name
            means[:, index] = [c.costs[name] * signs[index] for c in [*running, *candidates]]
        believed = means[: len(running)]
        base = observed if front is None else front * signs
        front = np.vstack([base, believed])
        everything = np.vstack([observed, front, means, known_points])
        reference = everything.max(axis=0) + 0.1 * np.maximum(np.ptp(everything, axis=0), 1e-12)
        samples = np.repeat(means[len(running):, None, :], self.samples, axis=1)
        samples[:, :, modelled] += spreads[len(running):, None, modelled] * draws[None, :, :]
        improvements = hypervolume_improvements(front, samples.reshape(-1, len(self.objectives)), reference)
        expected = improvements.reshape(len(candidates), self.samples).mean(axis=1)
        return np.concatenate([expected, hypervolume_improvements(front, known_points, reference)])

    # Candidates.

    def _design_order(self, trials: Sequence[FrozenTrial], candidates: list[Candidate]) -> list[Candidate]:
        """``candidates`` by how many design levels the study has not tried yet they hold (most first), then
        by cost (cheapest first): each design pick covers as much of the space as one architecture can."""
        tried = [t.params for t in trials] + [c.params for c in self._running(trials)]
        covered = {(name, value) for params in tried for name, value in params.items()}

        def uncovered(candidate: Candidate) -> int:
            return sum(value in self.levels.get(name, ()) and (name, value) not in covered
                       for name, value in candidate.params.items())

        return sorted(candidates, key=lambda c: (-uncovered(c), c.costs[self.design_cost]))

    def _candidate(self, params: dict[str, Any], config: ModelConfig) -> Candidate:
        architecture = self.architecture_of(config)
        if architecture not in self._described:
            self._described[architecture] = Candidate(dict(params), architecture, self.costs_of(config))
        return self._described[architecture]

    def _tried(self, trials: Sequence[FrozenTrial]) -> set[str | None]:
        """The architectures the study holds or is training."""
        return {t.user_attrs.get("config_hash") for t in trials} | {c.architecture for c in self._running(trials)}

    def _running(self, trials: Sequence[FrozenTrial]) -> list[Candidate]:
        """The architectures of running trials: picked by a sampler like this one, or drawn."""
        return [c for t in trials if t.state == TrialState.RUNNING
                if (c := self._candidate_of(t.system_attrs.get(_PICK, t.params))) is not None]

    def _candidate_of(self, params: dict[str, Any]) -> Candidate | None:
        try:
            config = self.space.config_from_params(params)
        except (SpaceError, ValueError):
            return None  # a trial still drawing its params, or one of another space
        return self._candidate(params, config)

    def _within_limits(self, candidates: list[Candidate]) -> list[Candidate]:
        return [c for c in candidates if _meets_known_limits(self.space.budget, c.costs)]


def _meets_known_limits(budget: Budget, costs: dict[str, float]) -> bool:
    """Whether costs (params in M, MACs in G) meet the budget's parameter and MAC limits."""
    excess = budget.static_excess(params=costs["params"] * 1e6, macs=costs["macs"] * 1e9)
    return all(value <= 0 for value in excess.values())


def _features(candidates: Sequence[Candidate]) -> np.ndarray:
    """One row per candidate in [0, 1]: numbers scaled over the candidates, other values one-hot."""
    names = sorted({name for c in candidates for name in c.params})
    columns: list[np.ndarray] = []
    for name in names:
        values = [c.params.get(name) for c in candidates]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numbers and len(numbers) == sum(v is not None for v in values):
            columns.append(_scaled(np.array([np.nan if v is None else float(v) for v in values])))
        else:
            for level in sorted({repr(v) for v in values if v is not None}):
                columns.append(np.array([float(repr(v) == level) for v in values]))
    return np.column_stack(columns) if columns else np.zeros((len(candidates), 1))


def _scaled(values: np.ndarray) -> np.ndarray:
    low, high = np.nanmin(values), np.nanmax(values)
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return np.nan_to_num(scaled, nan=0.0)


def _posterior(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the noise-free function at ``test_x`` under Bayesian linear regression
    on the observations (weight and noise precisions by evidence maximisation): an additive model, whose
    per-value effects few trials already estimate, where a kernel needs neighbours of every candidate."""
    from sklearn.linear_model import BayesianRidge

    if len(test_x) == 0:
        return np.zeros(0), np.zeros(0)
    model = BayesianRidge().fit(train_x, train_y)
    mean, total = model.predict(test_x, return_std=True)
    return mean, np.sqrt(np.maximum(total**2 - 1.0 / model.alpha_, 1e-12))
