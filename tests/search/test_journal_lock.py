"""The journal's write lock and torn-record handling with real processes killed mid-write."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage

from refiner_nas.search.storages import SafeJournalFileBackend, TornJournalWarning, journal_lock


def _hold_lock_for_ever(path: Path, holding: multiprocessing.synchronize.Event) -> None:
    with journal_lock(path):
        holding.set()
        time.sleep(3600)


def _open_journal(path: Path) -> JournalStorage:
    return JournalStorage(SafeJournalFileBackend(path))


def test_a_writer_killed_while_holding_the_lock_releases_it_at_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    storage = _open_journal(path)
    optuna.create_study(storage=storage, study_name="s")
    context = multiprocessing.get_context("fork")
    holding = context.Event()
    holder = context.Process(target=_hold_lock_for_ever, args=(path, holding))
    holder.start()
    assert holding.wait(30)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    started = time.monotonic()
    study = optuna.load_study(study_name="s", storage=storage)
    study.enqueue_trial({"x": 1})
    # Optuna's lock file would block this append for its 30 s grace period.
    assert time.monotonic() - started < 5
    assert len(study.get_trials()) == 1


def test_two_threads_of_one_process_exclude_each_other(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    path.touch()
    order: list[str] = []

    def take_lock() -> None:
        with journal_lock(path):
            order.append("other")

    with journal_lock(path):
        other = threading.Thread(target=take_lock)
        other.start()
        time.sleep(0.3)
        order.append("first")
    other.join(5)
    assert order == ["first", "other"]


def test_an_append_after_a_writer_killed_mid_record_sets_the_fragment_aside(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    storage = _open_journal(path)
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"x": 1})
    whole = path.read_bytes()
    with open(path, "ab") as journal:  # what a writer killed half-way through a record leaves
        journal.write(b'{"op_code":4,"worker_id":"dead","study_id":0,"datetime_st')
    with pytest.warns(TornJournalWarning, match="set aside"):
        study.enqueue_trial({"x": 2})
    assert path.read_bytes().startswith(whole)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reopened = optuna.load_study(study_name="s", storage=_open_journal(path))
    assert [t.system_attrs["fixed_params"] for t in reopened.get_trials()] == [{"x": 1}, {"x": 2}]
    assert len(list(tmp_path.glob("journal.log.torn-*"))) == 1


def test_only_records_that_start_or_end_a_trial_are_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = _open_journal(tmp_path / "journal.log")
    study = optuna.create_study(storage=storage, study_name="s")
    flushes: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr("refiner_nas.search.storages._journal.os.fsync",
                        lambda fd: (flushes.append(fd), real_fsync(fd)))
    trial = study.ask()
    assert len(flushes) == 1  # the trial's creation
    for epoch in range(5):
        trial.set_user_attr("top1_curve", list(range(epoch + 1)))
        trial.report(float(epoch), epoch)
    assert len(flushes) == 1  # per-epoch records: no flush of their own
    study.tell(trial, 1.0)
    assert len(flushes) == 2  # its end flushes it, and every record before it, to disk
