"""Which sampler a launch's workers draw with: built from the settings, seeded per worker, costing
candidates as the launch's trials do (``LaunchCosts``); and how over-budget trials are told to it
(``prunes_over_budget``)."""

from __future__ import annotations

import hashlib

import optuna
from optuna.storages import BaseStorage

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.search.evaluation import ArchitectureEvaluator, make_evaluator
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace, grid_size
from refiner_nas.search.stoppers import promotion_rule
from refiner_nas.search.strategy import resolve_sampler

# GPSampler's acquisition search (private attributes, Optuna 5) is sized for continuous spaces: 2048
# quasi-random points, 10 local searches, 128 EHVI samples cost about 1 s per trial on 2 cores, growing
# with the study. An architecture space is a few categorical choices: a tenth of that search does
# (a whole search of the shipped table in about 10 s; docs/benchmarks.md#search-strategies).
GP_ACQUISITION_SEARCH = {"_n_preliminary_samples": 256, "_n_local_search": 4, "_n_qmc_samples_ehvi": 32}


def sampler_seed(seed: int, worker: str, trials_so_far: int) -> int:
    """The seed of one worker's own reproducible stream: the same launch seed, worker and study size give
    the same draws; two workers, or the same worker relaunched on a grown study, draw differently."""
    digest = hashlib.sha256(f"{seed}:{worker}:{trials_so_far}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def make_sampler(
    settings: SearchSettings, space: SearchSpace, *, seed: int | None = None
) -> optuna.samplers.BaseSampler:
    """A seeded sampler (``seed``, by default the launch's). Budget violations reach it through the trials'
    constraints (``Trial.set_constraint``), which TPE and NSGA-II use to steer away from them; TPE treats
    trials running in other workers as bad results for now (constant liar), so workers spread out."""
    seed = settings.seed if seed is None else seed
    settings = settings.model_copy(update={"sampler": resolve_sampler(settings, space)})
    rule = promotion_rule(settings, space)
    if rule is None:
        return _drawing_sampler(settings, space, seed=seed)
    from refiner_nas.search.samplers._promoting import PromotingSampler
    return PromotingSampler(_drawing_sampler(settings, space, seed=seed, fidelity_epoch=rule.rung), rule,
                            settings.proxy_recipe_key(), architectures=grid_size(space))


def _drawing_sampler(settings: SearchSettings, space: SearchSpace, *, seed: int,
                     fidelity_epoch: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler ``settings.sampler`` (resolved) that draws new architectures; ``fidelity_epoch``: EHVI's."""
    if settings.sampler == "tpe":
        startup = max(4, min(10, settings.trials // 3))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    if settings.sampler == "nsga2":
        population = max(4, min(50, settings.trials // 3))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
        for name, value in GP_ACQUISITION_SEARCH.items():
            setattr(sampler, name, value)
        return sampler
    if settings.sampler == "ehvi":
        return known_cost_sampler(settings, space, seed=seed, fidelity_epoch=fidelity_epoch)
    return optuna.samplers.GridSampler(space.grid(), seed=seed)


def known_cost_sampler(settings: SearchSettings, space: SearchSpace, *, seed: int,
                       fidelity_epoch: int | None = None) -> optuna.samplers.BaseSampler:
    """``refiner_nas.search.samplers._ehvi.KnownCostSampler`` costing candidates as the launch's trials do."""
    from refiner_nas.search.samplers._ehvi import KnownCostSampler

    costs = LaunchCosts(settings, space)
    return KnownCostSampler(space, settings.objective_list, architecture_of=costs.architecture,
                            costs_of=costs.known_costs, seed=seed, fidelity_epoch=fidelity_epoch)


class LaunchCosts:
    """A configuration's recorded hash and known costs as the launch's evaluator counts them (the table's
    counts on the simulated backend), fitted to the dataset's channels and classes. Picklable, as Ray
    ships the sampler to its searcher: the evaluator is built again where it is first needed."""

    def __init__(self, settings: SearchSettings, space: SearchSpace) -> None:
        self.settings, self.space = settings, space
        self._evaluator: ArchitectureEvaluator | None = None

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_evaluator": None}

    @property
    def evaluator(self) -> ArchitectureEvaluator:
        if self._evaluator is None:
            self._evaluator = make_evaluator(self.settings, self.space)
        return self._evaluator

    def architecture(self, config: ModelConfig) -> str:
        return self.evaluator.fit_to_data(config)[0].config_hash()

    def known_costs(self, config: ModelConfig) -> dict[str, float]:
        from refiner_nas.search.samplers._ehvi import KNOWN_COSTS

        costs = self.evaluator.count_costs(self.evaluator.fit_to_data(config)[0])
        values = self.evaluator.cost_values({"params": costs.params, "macs": costs.macs})
        return {name: values[name] for name in KNOWN_COSTS}


# Samplers that learn from completed trials only (GPSampler): an over-budget trial told as pruned teaches
# them nothing, and GP then proposes the same architecture again and again (`bench search --max-params
# 13522`, 10 seeds: 3 in 10 searches reached 95 % of the feasible hypervolume instead of 10 in 10).
_LEARN_FROM_COMPLETED_ONLY = ("gp",)


def prunes_over_budget(settings: SearchSettings) -> bool:
    """Whether over-budget trials are told to Optuna as pruned, so its views hold no result of top-1 0 for
    them: for every sampler but GP, which would learn nothing from them (it gets them completed with top-1
    0 and their constraints). TPE learns from pruned ones as much (through their constraints); random and
    grid learn from no trial; NSGA-II breeds from completed ones only and measured no worse; EHVI never
    proposes an architecture the study holds, whatever its state."""
    return settings.sampler not in _LEARN_FROM_COMPLETED_ONLY


def worker_sampler(settings: SearchSettings, space: SearchSpace, storage: BaseStorage,
                   worker: str) -> optuna.samplers.BaseSampler:
    """The sampler of ``worker`` on the study in ``storage``, on its own stream (``sampler_seed``)."""
    try:
        trials_so_far = storage.get_n_trials(storage.get_study_id_from_name(settings.study_name))
    except KeyError:
        trials_so_far = 0
    return make_sampler(settings, space, seed=sampler_seed(settings.seed, worker, trials_so_far))
