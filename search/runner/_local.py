"""Local worker processes on one study, watched and replaced when one dies."""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import multiprocessing.resource_tracker
import os
import signal
import socket
import sys
import time

import optuna
import torch
from optuna.trial import TrialState

from refiner_nas.search.runner._run import (
    STOP_SIGNALS,
    interrupt_on_signals,
    prepare_space,
    run_trials,
    stop_signal,
)
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.storages import RETRIES_OF_A_DEAD_WORKER_TRIAL, fail_and_requeue
from refiner_nas.search.study import create_or_resume_study


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
        # Started with the stop signals blocked, the worker gets one sent while it imports once it can
        # handle it (Python's default would print a KeyboardInterrupt traceback from its imports). The
        # resource tracker is started first: starting it unblocks them in this process.
        multiprocessing.resource_tracker.ensure_running()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
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
        except KeyboardInterrupt as stop:
            for process in workers.values():  # a signal sent to the launch alone reaches them this way
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, stop_signal(stop))
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


def _worker(settings_json: str, threads: int, index: int) -> None:
    """A local worker process: its own sampler stream, Ctrl-C and SIGTERM stop it cleanly (exit code 0: the
    launch reports the stop), and input or storage errors end it with one line (exit code 2) for the
    launch to report."""
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    settings = SearchSettings.model_validate_json(settings_json)
    try:
        interrupt_on_signals(once=True)  # a stop sent while this process started is raised here
        space = prepare_space(settings)
        run_trials(settings, space, create_or_resume_study(settings, space, worker=f"worker-{index}"))
    except KeyboardInterrupt:
        pass  # the trial in flight is already recorded as interrupted and re-queued
    except (ValueError, OSError, KeyError) as error:
        print(f"error: worker {index}: {str(error).splitlines()[0] if str(error) else type(error).__name__}",
              file=sys.stderr)
        sys.exit(2)


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None or exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        return f"killed by {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"killed by signal {-exitcode}"
