"""Running a search: open or resume the study, check the data, run trials here or in worker processes."""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from functools import cache

import optuna
import torch
from optuna.trial import TrialState

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.search.data import DataBundle, DataSpec, load_data
from refiner_nas.search.evaluate import ArchitectureEvaluator
from refiner_nas.search.liveness import RETRIES_OF_A_DEAD_WORKER_TRIAL, fail_and_requeue
from refiner_nas.search.prescreen import with_prescreen
from refiner_nas.search.progress import SearchProgress
from refiner_nas.search.scheduling import work_on_study
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace
from refiner_nas.search.study import open_study
from refiner_nas.search.training import resolve_device
from refiner_nas.search.trial import TrialRunner


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
        from refiner_nas.search.tabular import table_evaluator

        return table_evaluator(settings, space)
    from refiner_nas.benchmarks.flops import count_costs

    device = str(resolve_device(settings.device))  # 'auto' becomes the device trials train on

    def measure_speed(config: ModelConfig) -> tuple[float, float]:
        from refiner_nas.benchmarks.speed import measure_config_speed

        return measure_config_speed(config, device=device)

    return ArchitectureEvaluator(
        settings=settings,
        space=space,
        load_data=data_loader(settings),
        count_costs=count_costs,
        measure_speed=measure_speed,
    )


def run_trials(settings: SearchSettings, space: SearchSpace, study: optuna.Study) -> None:
    """Run trials in this process until the study holds ``settings.trials`` evaluated architectures and
    no trial of it is running (:func:`refiner_nas.search.scheduling.work_on_study`)."""
    evaluator = make_evaluator(settings, space)
    study.sampler = with_prescreen(study.sampler, settings, space, evaluator)
    runner = TrialRunner(evaluator)
    work_on_study(study, runner, trials=settings.trials, heartbeat_s=settings.heartbeat_s)


def _worker(settings_json: str, threads: int, index: int) -> None:
    """A local worker process: its own sampler stream, Ctrl-C and SIGTERM stop it cleanly, and input or
    storage errors end it with one line (exit code 2) for the launch to report."""
    interrupt_on_signals()
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    settings = SearchSettings.model_validate_json(settings_json)
    try:
        space = prepare_space(settings)
        run_trials(settings, space, open_study(settings, space, worker=f"worker-{index}"))
    except KeyboardInterrupt:
        pass  # the trial in flight is already recorded as interrupted and re-queued
    except (ValueError, OSError, KeyError) as error:
        print(f"error: worker {index}: {str(error).splitlines()[0] if str(error) else type(error).__name__}",
              file=sys.stderr)
        sys.exit(2)


def interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM (a scheduler's stop) both interrupt: the trial in flight is recorded and
    re-queued. Set explicitly: a process started in the background inherits SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def launch(settings: SearchSettings, *, show_progress: bool = True) -> optuna.Study:
    """Run (or resume) the search ``settings`` describes and return its study.

    With ``workers`` > 1, that many processes share the study (each with its share of the CPU threads);
    with 0, the study is only created (for workers on other machines). KeyboardInterrupt propagates after
    every trial in flight is recorded as interrupted and re-queued.

    Raises:
        ValueError: bad options, a study created with other options.
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
            LocalWorkers(settings, study).run()
    return study


class LocalWorkers:
    """``settings.workers`` processes on one study, watched: a worker that dies (killed, out of memory)
    has its trial failed and re-queued at once, and a replacement takes its place."""

    def __init__(self, settings: SearchSettings, study: optuna.Study, *, poll_s: float = 0.2) -> None:
        self.settings, self.study, self.poll_s = settings, study, poll_s
        self.threads = max(1, (os.cpu_count() or 1) // settings.workers)
        self.context = multiprocessing.get_context("spawn")
        self.replacements_left = settings.workers * RETRIES_OF_A_DEAD_WORKER_TRIAL
        self.errors: list[str] = []

    def _start(self, index: int) -> multiprocessing.process.BaseProcess:
        process = self.context.Process(target=_worker, args=(self.settings.model_dump_json(), self.threads, index))
        process.start()
        return process

    def run(self) -> None:
        """Run the workers to the end.

        Raises:
            ChildProcessError: a worker stopped on an error (its line was printed).
            KeyboardInterrupt: after the workers recorded and re-queued their trials.
        """
        workers = {index: self._start(index) for index in range(self.settings.workers)}
        try:
            while workers:
                for index, process in list(workers.items()):
                    if process.is_alive():
                        continue
                    process.join()
                    del workers[index]
                    if process.exitcode and process.exitcode < 0 and self._recover(process):
                        workers[index] = self._start(index)
                    elif process.exitcode:
                        self.errors.append(f"worker {index} exited with code {process.exitcode}")
                time.sleep(self.poll_s)
        except KeyboardInterrupt:
            for process in workers.values():  # a signal sent to the launch alone reaches them this way
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, signal.SIGINT)
            for process in workers.values():
                process.join()
            raise
        if self.errors:
            raise ChildProcessError("; ".join(self.errors) + " (its error is printed above); the study keeps every "
                               "recorded trial: run the same command again to continue")

    def _recover(self, process: multiprocessing.process.BaseProcess) -> bool:
        """Fail and re-queue the dead worker's running trials; True when a replacement may start."""
        name = f"{socket.gethostname()}:{process.pid}"
        reason = f"its worker {name} died ({_signal_name(process.exitcode)})"
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("worker") == name:
                fail_and_requeue(self.study, trial, reason)
        if self.replacements_left <= 0:
            self.errors.append(f"worker {name} died ({_signal_name(process.exitcode)}) and no replacement is left")
            return False
        self.replacements_left -= 1
        return True


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None or exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        return f"killed by {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"killed by signal {-exitcode}"
