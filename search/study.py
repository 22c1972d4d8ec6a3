"""Creating or resuming the Optuna study of a launch: storage, directions, sampler, pruner."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.storages import BaseStorage

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.search.dashboard import name_metrics
from refiner_nas.search.settings import Sampler, SearchSettings
from refiner_nas.search.space import SearchSpace
from refiner_nas.search.stoppers import EarlyStopper, RungPromotion, make_stopper
from refiner_nas.search.storage import open_storage, redact

if TYPE_CHECKING:
    from refiner_nas.search.evaluate import ArchitectureEvaluator

# Study attributes that must match for a launch to resume a study.
_RESUME_KEYS = ("objectives", "space", "dataset", "epochs")
# Launch options that belong to one machine and are not stored with the study.
_MACHINE_LOCAL = {"storage", "run_dir", "device", "workers", "space"}
# GPSampler's acquisition search (private attributes, Optuna 5) is sized for continuous spaces: 2048
# quasi-random points, 10 local searches, 128 EHVI samples cost about 1 s per trial on 2 cores, growing
# with the study. An architecture space is a few categorical choices: a tenth of that search does
# (a whole search of the shipped table in about 10 s; README, "Search efficiency").
GP_ACQUISITION_SEARCH = {"_n_preliminary_samples": 256, "_n_local_search": 4, "_n_qmc_samples_ehvi": 32}


class StudyMismatchError(ValueError):
    """A launch whose options differ from those the existing study was created with."""


def sampler_seed(seed: int, worker: str, trials_so_far: int) -> int:
    """The seed of one worker's own reproducible stream: the same launch seed, worker and study size give
    the same draws; two workers, or the same worker relaunched on a grown study, draw differently."""
    digest = hashlib.sha256(f"{seed}:{worker}:{trials_so_far}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def resolve_sampler(settings: SearchSettings, space: SearchSpace) -> Sampler:
    """The sampler ``settings`` ask for; ``auto`` is the known-cost EHVI sampler on a space it can enumerate
    (its measured win, README "Search efficiency"), TPE on a larger one (a random pool's costs would be
    counted afresh for every trial)."""
    if settings.sampler != "auto":
        return settings.sampler
    from refiner_nas.search.ehvi import ENUMERATE_LIMIT, grid_size

    return "ehvi" if grid_size(space) <= ENUMERATE_LIMIT else "tpe"


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
    from refiner_nas.search.ehvi import grid_size
    from refiner_nas.search.promotion import PromotingSampler

    return PromotingSampler(_drawing_sampler(settings, space, seed=seed, fidelity_epoch=rule.rung), rule,
                            settings.budget_key(), architectures=grid_size(space))


def resolve_early_stop(settings: SearchSettings, space: SearchSpace) -> bool:
    """Whether trials stop early: ``--early-stop`` or ``--no-early-stop`` as given, by default where the
    sampler resolves to EHVI on several objectives (EHVI with ``promote``: the measured win, README "Search
    efficiency")."""
    if settings.early_stop is not None:
        return settings.early_stop
    return resolve_sampler(settings, space) == "ehvi" and len(settings.objective_list) >= 2


def launch_stopper(settings: SearchSettings, space: SearchSpace) -> EarlyStopper | None:
    """How the launch's multi-objective trials stop early (None when they do not). ``promote`` compares
    nothing before the start-up design (or the whole launch, if shorter) reached its rung."""
    if not resolve_early_stop(settings, space):
        return None
    from refiner_nas.search.ehvi import design_size

    return make_stopper(settings.stopper, settings.objective_list, settings.epochs,
                        min_population=min(design_size(space), settings.trials))


def promotion_rule(settings: SearchSettings, space: SearchSpace) -> RungPromotion | None:
    """The ``promote`` stopper's rule when the launch pauses and resumes trials (``--early-stop --stopper
    promote``, several objectives), else None."""
    stopper = launch_stopper(settings, space)
    if not isinstance(stopper, RungPromotion) or len(settings.objective_list) < 2:
        return None
    return stopper


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
    """:class:`refiner_nas.search.ehvi.KnownCostSampler` costing candidates as the launch's trials do."""
    from refiner_nas.search.ehvi import KnownCostSampler

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
            from refiner_nas.search.launch import make_evaluator

            self._evaluator = make_evaluator(self.settings, self.space)
        return self._evaluator

    def architecture(self, config: ModelConfig) -> str:
        return self.evaluator.fit_to_data(config)[0].config_hash()

    def known_costs(self, config: ModelConfig) -> dict[str, float]:
        from refiner_nas.search.ehvi import KNOWN_COSTS

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
    """The sampler of ``worker`` on the study in ``storage``, on its own stream (:func:`sampler_seed`)."""
    try:
        trials_so_far = storage.get_n_trials(storage.get_study_id_from_name(settings.study_name))
    except KeyError:
        trials_so_far = 0
    return make_sampler(settings, space, seed=sampler_seed(settings.seed, worker, trials_so_far))


def make_pruner(settings: SearchSettings) -> optuna.pruners.BasePruner:
    """Epoch-level pruning for single-objective studies (multi-objective ones use the early stop)."""
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=settings.epochs)
    return optuna.pruners.NopPruner()


def open_study(settings: SearchSettings, space: SearchSpace, *, worker: str = "worker-0") -> optuna.Study:
    """Create the study, or resume it when it exists with the same objectives, space, data and epochs;
    trials run through it draw from ``worker``'s stream.

    Raises:
        StudyMismatchError: the existing study was created with other options.
    """
    storage = open_storage(settings.storage, settings.study_dir)
    name = settings.study_name
    wanted = {"objectives": settings.objectives, "space": space.source, "dataset": settings.dataset,
              "epochs": settings.epochs}
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=[o.direction for o in settings.objective_list],
        sampler=worker_sampler(settings, space, storage, worker),
        pruner=make_pruner(settings),
        load_if_exists=True,
    )
    recorded = study.user_attrs
    if not recorded:
        for key, value in wanted.items():
            study.set_user_attr(key, value)
        # What a worker on another machine needs to join: the options (no local paths, no password)
        # and the space definition itself.
        study.set_user_attr("settings", settings.model_dump(mode="json", exclude=_MACHINE_LOCAL))
        study.set_user_attr("space_yaml", Path(space.source).read_text())
        name_metrics(study, settings.objective_list)
        return study
    differing = [f"--{key} {recorded.get(key)!r} (now {wanted[key]!r})" for key in _RESUME_KEYS
                 if recorded.get(key) != wanted[key]]
    if differing:
        raise StudyMismatchError(
            f"study {name!r} was created with {', '.join(differing)}; relaunch with the same options to "
            "resume it, or give a new --study name"
        )
    name_metrics(study, settings.objective_list)
    return study


def join_study(settings: SearchSettings, space: SearchSpace, *, worker: str) -> optuna.Study:
    """Open an existing study to run more trials in it as ``worker``, with the launch's kind of sampler (on
    the worker's own stream) and pruner."""
    storage = open_storage(settings.storage, settings.study_dir, create=False)
    return load_existing_study(settings, sampler=worker_sampler(settings, space, storage, worker),
                               pruner=make_pruner(settings), storage=storage)


def load_existing_study(
    settings: SearchSettings,
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    storage: BaseStorage | None = None,
) -> optuna.Study:
    """Open an existing study (for status, queries, or with a sampler and pruner to run trials); a query
    never creates anything.

    Raises:
        KeyError: no such study (the message lists the studies there).
        StorageError: no journal at that place.
    """
    storage = storage or open_storage(settings.storage, settings.study_dir, create=False)
    try:
        return optuna.load_study(study_name=settings.study_name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        existing = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        where = redact(settings.storage) if settings.storage else str(settings.study_dir)
        raise KeyError(
            f"no study {settings.study_name!r} in {where} (studies there: {', '.join(existing) or 'none'}); "
            "check --study, --storage and --run-dir"
        ) from None
