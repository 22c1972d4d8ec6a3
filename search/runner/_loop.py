"""One worker's loop: run trials until the study holds its architectures, and leave nothing behind.

Every worker (the launch itself, its local worker processes, ``search worker`` on other machines) runs
``work_on_study``. ``--trials N`` counts evaluated architectures (``refiner_nas.search.records.EVALUATED``);
a trial that repeats an architecture (a duplicate) or fails does not count. A worker takes a new trial
only while the evaluated and running trials fall short of N, or while a paused trial passes the
``promote`` rule (resuming it evaluates no new architecture), runs re-queued trials first, and before it
leaves waits for the other workers' running trials: they finish, or their worker is found dead, the
trial is re-queued and this worker runs it. So no trial is left running once every worker has stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from refiner_nas.search.stoppers import RungPromotion
from refiner_nas.search.storages import (
    JournalWriteError,
    StorageUnavailableError,
    dead_trials,
    fail_and_requeue,
    recovered_at,
)
from refiner_nas.search.study import StudyIndex
from refiner_nas.search.trial import TrialRunner

_logger = logging.getLogger("refiner_nas.search")
# Consecutive draws of known architectures after which a worker concludes the space is exhausted.
REPEATED_DRAWS_LIMIT = 50


@dataclass(frozen=True)
class StudyProgress:
    evaluated: int
    running: int
    waiting: int


def study_progress(index: StudyIndex) -> StudyProgress:
    """The counts of a refreshed index."""
    return StudyProgress(evaluated=index.evaluated, running=index.count(TrialState.RUNNING),
                         waiting=index.count(TrialState.WAITING))


def requeue_dead_trials(study: optuna.Study, index: StudyIndex, *, heartbeat_s: float) -> int:
    """Fail and re-queue the running trials of dead workers (of a refreshed ``index`` of ``study``);
    returns how many this worker claimed."""
    dead = dead_trials(index.running(), interval_s=heartbeat_s, seen_since=recovered_at(study._storage))
    return sum(fail_and_requeue(study, trial.trial, trial.reason) for trial in dead)


def work_on_study(study: optuna.Study, runner: TrialRunner, *, trials: int, heartbeat_s: float,
                  poll_s: float = 1.0) -> None:
    """Run trials of ``study`` until it holds ``trials`` evaluated architectures and none is running."""
    repeated_draws = 0
    index = runner.index
    while True:
        if requeue_dead_trials(study, index.refresh(study), heartbeat_s=heartbeat_s):
            index.refresh(study)
        progress = study_progress(index)
        if (not progress.waiting and progress.evaluated + progress.running >= trials
                and not _promotion_pending(study, runner)):
            if not progress.running:
                return
            time.sleep(min(poll_s, heartbeat_s))
            continue
        if not progress.waiting and _exhausted(study, repeated_draws):
            return
        status = run_one_trial(study, runner)
        repeated_draws = repeated_draws + 1 if status in ("duplicate", "failed") else 0


def _promotion_pending(study: optuna.Study, runner: TrialRunner) -> bool:
    """Whether a paused trial of the runner's budget passes its ``promote`` rule now (so the next trial
    resumes it)."""
    rule = runner.early_stop
    if not isinstance(rule, RungPromotion):
        return False
    return bool(rule.promotions(study.get_trials(deepcopy=False), runner.budget_key))


def run_one_trial(study: optuna.Study, runner: TrialRunner) -> str | None:
    """Ask, evaluate and tell one trial (a re-queued one first); returns its record status."""
    try:
        study.optimize(runner, n_trials=1, catch=(Exception,))
    except (AssertionError, UnboundLocalError) as error:
        # Optuna asserts when it cannot record a trial's end, or fails on its own unset variable when the
        # storage cannot answer after that either; the storage's own error says why in one line.
        raise _storage_failure(error) or error from None
    except ValueError:
        # Optuna cannot tell a result for a trial that was re-queued while this worker was cut off.
        if runner.last is None or not runner.last.taken_over:
            raise
        _logger.warning("trial %d was re-queued by another worker while this one was cut off from the storage; "
                        "going on with the next", runner.last.trial.number)
        return "failed"
    return None if runner.last is None else runner.last.fields.get("status")


def _storage_failure(error: BaseException) -> OSError | None:
    """The storage failure (a full disk, an unreachable database) among the exceptions behind ``error``."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (JournalWriteError, StorageUnavailableError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _exhausted(study: optuna.Study, repeated_draws: int) -> bool:
    sampler = study.sampler
    if isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study):
        return True
    if repeated_draws >= REPEATED_DRAWS_LIMIT:
        _logger.warning("the sampler drew only known architectures %d times in a row: the space looks exhausted",
                        repeated_draws)
        return True
    return False
