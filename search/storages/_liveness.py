"""Which running trials still have a live worker, on every storage alike.

Each running trial beats: its worker writes the time into the trial every ``interval`` seconds from a
background thread (``Heartbeat``). A trial that stopped beating for three intervals, or whose worker
process on this machine is gone, belongs to a dead (or cut-off) worker: ``fail_and_requeue`` marks it
failed with a reason that says so and enqueues the same architecture again, so a live worker completes
it. Marking it failed is the claim: the storage lets one worker finish a trial, so when several notice
the same dead trial, one re-queues it. A worker cut off long enough to be declared dead learns it on its
next write (``TrialTakenOver``) and leaves that trial to the retry.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from refiner_nas.search.periodic import Periodic
from refiner_nas.search.records import record_fields

HEARTBEAT_KEY = "refiner_nas:heartbeat"
# A trial whose worker died is re-queued this many times at most (a configuration that kills its worker
# every time, e.g. by exhausting memory, must not do so for ever). Ctrl-C re-queues without limit.
RETRIES_OF_A_DEAD_WORKER_TRIAL = 2
# Heartbeats missed before a trial is declared dead.
MISSED_BEATS = 3
_logger = logging.getLogger("refiner_nas.liveness")


class TrialTakenOver(RuntimeError):
    """This worker's trial was declared dead while it was cut off, and re-queued; it stops here."""


class Heartbeat(Periodic):
    """Context manager: beats for ``trial_id`` now and every ``interval_s`` until exit.

    A beat that fails for a passing storage fault is tried again at the next interval (the thread never
    dies of it); ``taken_over`` is set once the storage says the trial was finished by someone else.
    """

    def __init__(self, storage: BaseStorage, trial_id: int, interval_s: float) -> None:
        super().__init__(self.beat, interval_s, name=f"heartbeat-{trial_id}")
        self.storage, self.trial_id = storage, trial_id
        self.taken_over = threading.Event()

    def beat(self) -> None:
        try:
            self.storage.set_trial_system_attr(self.trial_id, HEARTBEAT_KEY, time.time())
        except UpdateFinishedTrialError:
            self.taken_over.set()
            self.stopped.set()
        except Exception as error:  # the next beat tries again; a long outage is the storage's to report
            _logger.warning("heartbeat of trial id %s not recorded (%s)", self.trial_id, type(error).__name__)


@dataclass(frozen=True)
class DeadTrial:
    trial: FrozenTrial
    reason: str


def dead_trials(trials: Iterable[FrozenTrial], *, interval_s: float, now: float | None = None,
                seen_since: float = 0.0) -> list[DeadTrial]:
    """The running trials whose worker process on this machine is gone, or that missed
    ``MISSED_BEATS`` heartbeats (trials from before heartbeats count from their start). Beats are
    only expected from ``seen_since`` on: the time this worker's storage came back after an outage, during
    which no worker could beat."""
    now = time.time() if now is None else now
    grace = MISSED_BEATS * interval_s
    dead = []
    for trial in trials:
        if trial.state != TrialState.RUNNING:
            continue
        worker = trial.user_attrs.get("worker")
        if worker is not None and not worker_alive(worker):
            dead.append(DeadTrial(trial, f"its worker {worker} died (the process is gone)"))
            continue
        last = trial.system_attrs.get(HEARTBEAT_KEY)
        if last is None and trial.datetime_start is not None:
            last = trial.datetime_start.timestamp()
        if last is not None and now - max(last, seen_since) > grace:
            dead.append(DeadTrial(trial, f"its worker {worker or '?'} sent no heartbeat for {now - last:.0f} s "
                                         "(dead, or cut off from the storage)"))
    return dead


def this_worker() -> str:
    """This process's name in records: 'host:pid'."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_alive(worker: str) -> bool:
    """False only when ``worker`` ('host:pid') ran on this machine and its process is gone."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return not _is_zombie(int(pid))


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def fail_and_requeue(study: optuna.Study, trial: FrozenTrial, reason: str, *,
                     max_retries: int | None = RETRIES_OF_A_DEAD_WORKER_TRIAL) -> bool:
    """Mark ``trial`` failed with ``reason`` and enqueue its architecture again (unless it was re-queued
    ``max_retries`` times already; None: no limit). Returns False when another worker finished or
    claimed the trial first (nothing is done then)."""
    storage = study._storage  # Optuna's public API finishes a trial only through tell from its own worker
    retries = retry_depth(study, trial)
    requeue = max_retries is None or retries < max_retries
    fields = record_fields(status="failed", fail_reason=reason if requeue else
                           f"{reason}; not re-queued again after {retries} retries", requeued=requeue)
    try:
        for key, value in fields.items():
            storage.set_trial_user_attr(trial._trial_id, key, value)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    if requeue:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    _logger.warning("trial %d failed: %s%s", trial.number, reason, "; re-queued" if requeue else "")
    return True


def requeue_interrupted(study: optuna.Study, trial: optuna.Trial) -> None:
    """Enqueue the architecture of ``trial``, cut short by the user, so the next launch trains it first."""
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def retry_depth(study: optuna.Study, trial: FrozenTrial) -> int:
    """How many times the architecture of ``trial`` was re-queued to reach it (0 for a first try)."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    depth, current = 0, trial
    while (earlier := current.user_attrs.get("retry_of")) is not None and earlier in by_number:
        depth, current = depth + 1, by_number[earlier]
    return depth
