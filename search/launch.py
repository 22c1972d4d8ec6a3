"""Running a search: open or resume the study, check the data, run trials here or in worker processes."""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from functools import cache

import optuna
import torch
from optuna.trial import TrialState

from refiner_space import ModelConfig
from search.data import DataBundle, DataSpec, load_data
from search.evaluate import ArchitectureEvaluator
from search.progress import FINISHED, SearchProgress
from search.settings import SearchSettings
from search.space import SearchSpace
from search.study import open_study
from search.training import resolve_device
from search.trial import TrialRunner


def prepare_space(settings: SearchSettings) -> SearchSpace:
    """Load the space, check the dataset and the training recipe before any trial starts (each raises
    a one-line error)."""
    space = SearchSpace.load(settings.space)
    DataSpec.parse(settings.dataset)
    settings.train_settings()
    fixed_size = space.fixed.get("img_size")
    if fixed_size is not None:
        data = data_loader(settings)(fixed_size)
        space = space.with_fixed(in_chans=data.in_chans, num_classes=data.num_classes)
    return space


def data_loader(settings: SearchSettings) -> Callable[[int | tuple[int, int]], DataBundle]:
    """Loads the dataset once per image size for this process."""

    @cache
    def load(img_size: int | tuple[int, int]) -> DataBundle:
        return load_data(
            settings.dataset,
            img_size=img_size,
            val_fraction=settings.val_fraction,
            split_seed=settings.seed,
            crop_ratio=settings.crop_ratio,
        )

    # YAML gives sizes as lists; the cache needs them hashable.
    return lambda img_size: load(tuple(img_size) if isinstance(img_size, list) else img_size)


def make_evaluator(settings: SearchSettings, space: SearchSpace) -> ArchitectureEvaluator:
    if settings.table is not None:  # the simulated backend: curves come from a benchmark table
        from search.tabular import table_evaluator

        return table_evaluator(settings, space)
    from benchmarks.flops import count_costs

    device = str(resolve_device(settings.device))  # 'auto' becomes the device trials train on

    def measure_speed(config: ModelConfig) -> tuple[float, float]:
        from benchmarks.speed import measure_config_speed

        return measure_config_speed(config, device=device)

    return ArchitectureEvaluator(
        settings=settings,
        space=space,
        load_data=data_loader(settings),
        count_costs=count_costs,
        measure_speed=measure_speed,
    )


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_trials(settings: SearchSettings, space: SearchSpace, study: optuna.Study) -> None:
    """Run trials in this process until the study holds ``settings.trials`` finished (complete or
    pruned) trials, trying at most that many more. Failed trials are recorded and the search goes on."""
    runner = TrialRunner(make_evaluator(settings, space))
    remaining = settings.trials - finished_trials(study)
    if remaining > 0:
        study.optimize(
            runner,
            n_trials=remaining,
            catch=(Exception,),
            callbacks=[optuna.study.MaxTrialsCallback(settings.trials, states=FINISHED)],
        )
    if settings.storage is not None and not settings.storage.startswith("journal://"):
        _retry_orphaned_trials(settings, study, runner)


def _retry_orphaned_trials(settings: SearchSettings, study: optuna.Study, runner: TrialRunner) -> None:
    """Before leaving, run the re-queued trials of workers that died, waiting while other workers'
    trials are still running (they finish, or their heartbeats stop and they are re-queued)."""
    while True:
        with warnings.catch_warnings():  # marked experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if waiting:
            study.optimize(runner, n_trials=len(waiting), catch=(Exception,))
        elif study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            time.sleep(settings.heartbeat_s)
        else:
            return


def _worker(settings_json: str, threads: int) -> None:
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = SearchSettings.model_validate_json(settings_json)
    space = prepare_space(settings)
    try:
        run_trials(settings, space, open_study(settings, space))
    except KeyboardInterrupt:
        pass  # the trial in flight is already recorded as interrupted


def launch(settings: SearchSettings, *, show_progress: bool = True) -> optuna.Study:
    """Run (or resume) the search ``settings`` describes and return its study.

    With ``workers`` > 1, that many processes share the study (each with its share of the CPU threads);
    with 0, the study is only created (for workers on other machines). KeyboardInterrupt propagates after
    every trial in flight is recorded as interrupted.
    """
    space = prepare_space(settings)
    study = open_study(settings, space)
    if settings.workers == 0:
        return study
    display = SearchProgress(study, settings.trials, epochs=settings.epochs) if show_progress else nullcontext()
    with display:
        if settings.workers == 1:
            run_trials(settings, space, study)
        else:
            _run_workers(settings)
    return study


def _run_workers(settings: SearchSettings) -> None:
    threads = max(1, (os.cpu_count() or 1) // settings.workers)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(settings.model_dump_json(), threads)) for _ in range(settings.workers)
    ]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:
        for worker in workers:  # they got the same SIGINT: let them record their trials, then finish
            worker.join()
        raise
    failed = [w.exitcode for w in workers if w.exitcode not in (0, None)]
    if failed:
        raise RuntimeError(f"{len(failed)} of {settings.workers} worker processes exited with codes {failed}")
