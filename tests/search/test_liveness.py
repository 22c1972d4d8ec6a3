"""Liveness and storage resilience, at the unit level: dead-trial detection, retries, sampler streams."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import datetime

import optuna
import pytest
from optuna.exceptions import StorageInternalError
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState, create_trial

from refiner_nas.search.samplers import make_sampler, sampler_seed
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace
from refiner_nas.search.storages import (
    HEARTBEAT_KEY,
    RetryingStorage,
    StorageUnavailableError,
    dead_trials,
    fail_and_requeue,
    recovered_at,
    retry_depth,
    worker_alive,
)


def running_trial(*, beat: float | None, worker: str = "elsewhere:1", started: float = 0.0):
    trial = create_trial(state=TrialState.RUNNING, user_attrs={"worker": worker})
    trial.datetime_start = datetime.fromtimestamp(started)
    if beat is not None:
        trial.system_attrs = {HEARTBEAT_KEY: beat}
    return trial


def test_a_trial_is_dead_after_three_missed_beats_unless_the_outage_was_everyone_s() -> None:
    now = 1000.0
    alive, stale = running_trial(beat=now - 5), running_trial(beat=now - 31)
    dead = dead_trials([alive, stale], interval_s=10, now=now)
    assert [d.trial for d in dead] == [stale]
    assert dead[0].reason == "its worker elsewhere:1 sent no heartbeat for 31 s (dead, or cut off from the storage)"
    # This worker's storage came back 10 s ago: nobody could beat before, so nobody is judged yet.
    assert dead_trials([stale], interval_s=10, now=now, seen_since=now - 10) == []
    # A trial from before heartbeats counts from its start.
    assert len(dead_trials([running_trial(beat=None, started=now - 100)], interval_s=10, now=now)) == 1


def test_a_trial_whose_local_worker_process_is_gone_is_dead_at_once() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    worker = f"{socket.gethostname()}:{gone.pid}"
    assert not worker_alive(worker) and worker_alive(f"{socket.gethostname()}:1") and worker_alive("other-host:1")
    dead = dead_trials([running_trial(beat=time.time(), worker=worker)], interval_s=10)
    assert dead[0].reason == f"its worker {worker} died (the process is gone)"


def test_fail_and_requeue_claims_once_and_stops_requeueing_after_two_retries() -> None:
    study = optuna.create_study(storage=InMemoryStorage(), directions=["maximize"])
    study.enqueue_trial({"x": 1.0})
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    frozen = study.get_trials()[trial.number]
    assert fail_and_requeue(study, frozen, "its worker died")
    assert not fail_and_requeue(study, frozen, "its worker died")  # already claimed: nothing done
    assert study.get_trials()[0].user_attrs == {"status": "failed", "fail_reason": "its worker died", "requeued": True}
    for expected_depth in (1, 2):
        retry = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
        assert retry.params == {"x": 1.0} and retry_depth(study, study.get_trials()[retry.number]) == expected_depth
        fail_and_requeue(study, study.get_trials()[retry.number], "its worker died")
    last = study.get_trials()[-1]
    assert last.state == TrialState.FAIL and last.user_attrs["requeued"] is False
    assert last.user_attrs["fail_reason"].endswith("not re-queued again after 2 retries")
    assert not study.get_trials(states=(TrialState.WAITING,))


class FlakyStorage(InMemoryStorage):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def get_all_studies(self):
        if self.failures:
            self.failures -= 1
            raise StorageInternalError("server closed the connection unexpectedly")
        return super().get_all_studies()


def test_storage_calls_ride_out_an_outage_then_fail_in_one_line() -> None:
    pauses: list[float] = []
    storage = RetryingStorage(FlakyStorage(failures=3), where="postgresql://u:***@db/x", sleep=pauses.append)
    assert storage.get_all_studies() == [] and pauses == [0.25, 0.5, 1.0]
    assert recovered_at(storage) > 0
    down = RetryingStorage(FlakyStorage(failures=10**6), where="postgresql://u:***@db/x", patience_s=0.05,
                           sleep=lambda _: time.sleep(0.01))
    with pytest.raises(StorageUnavailableError) as error:
        down.get_all_studies()
    assert str(error.value) == (
        "storage postgresql://u:***@db/x unreachable for 0 s (server closed the connection unexpectedly); the trials "
        "it recorded are kept: run the same command again once it is back"
    )


def test_each_worker_draws_from_its_own_reproducible_stream() -> None:
    assert sampler_seed(0, "worker-0", 0) == sampler_seed(0, "worker-0", 0)
    assert len({sampler_seed(0, w, n) for w in ("worker-0", "worker-1") for n in (0, 5)}) == 4
    settings = SearchSettings(sampler="random")
    space = SearchSpace.load("tiny")
    first_draws = []
    for worker in ("worker-0", "worker-1", "worker-2"):
        study = optuna.create_study(directions=["maximize", "minimize"],
                                    sampler=make_sampler(settings, space, seed=sampler_seed(0, worker, 0)))
        first_draws.append(space.suggest(study.ask()).config_hash())
    assert len(set(first_draws)) == 3


def test_a_training_finished_after_a_takeover_is_kept_and_its_retry_reuses_it() -> None:
    """A worker cut off until its trial was re-queued, whose training then completes: the result is saved
    as a trial of its own, and the re-queued copy reuses it instead of training again."""
    from refiner_nas.search.evaluation import table_evaluator
    from refiner_nas.search.runner import run_one_trial
    from refiner_nas.search.tabular import SHIPPED_TABLE, cached_table, table_settings, table_space
    from refiner_nas.search.trial import TrialRunner

    table = cached_table(str(SHIPPED_TABLE))
    settings = table_settings(table, SHIPPED_TABLE, sampler="random", trials=1)
    space = table_space(table)
    study = optuna.create_study(directions=[o.direction for o in settings.objective_list],
                                sampler=make_sampler(settings, space))
    evaluator = table_evaluator(settings, space)
    train = evaluator.train

    def train_then_get_cut_off(config, data, report, state):
        curve = train(config, data, report, state)
        running = study.get_trials(states=(TrialState.RUNNING,))[0]
        assert fail_and_requeue(study, running, "its worker sent no heartbeat for 61 s")  # another worker's view
        return curve

    evaluator.train = train_then_get_cut_off
    runner = TrialRunner(evaluator)
    assert run_one_trial(study, runner) == "failed"  # the cut-off worker goes on without an error
    taken, retry, kept = study.get_trials()  # re-queued by the other worker, then the result kept
    assert taken.state == TrialState.FAIL and taken.user_attrs["requeued"]
    assert kept.state == TrialState.COMPLETE and kept.user_attrs["status"] == "trained"
    assert kept.params == taken.params and kept.user_attrs["config_hash"] == taken.user_attrs["config_hash"]
    assert retry.state == TrialState.WAITING

    evaluator.train = train
    assert run_one_trial(study, runner) == "duplicate"
    reused = study.get_trials()[retry.number]
    assert reused.user_attrs["duplicate_of"] == kept.number and reused.values == kept.values
    assert reused.user_attrs["retry_of"] == taken.number


class RecordingStorage(InMemoryStorage):
    """Remembers the order of user-attribute writes."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    def set_trial_user_attr(self, trial_id: int, key: str, value: object) -> None:
        self.keys.append(key)
        super().set_trial_user_attr(trial_id, key, value)


def test_a_trial_names_its_worker_before_anything_else() -> None:
    """So a worker killed before its trial's first beat is found dead at once, by its process."""
    from refiner_nas.search.evaluation import table_evaluator
    from refiner_nas.search.storages import this_worker
    from refiner_nas.search.tabular import SHIPPED_TABLE, cached_table, table_settings, table_space
    from refiner_nas.search.trial import TrialRunner

    table = cached_table(str(SHIPPED_TABLE))
    settings = table_settings(table, SHIPPED_TABLE, sampler="random", early_stop=False)
    space = table_space(table)
    storage = RecordingStorage()
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    study.optimize(TrialRunner(table_evaluator(settings, space)), n_trials=1)
    assert storage.keys[0] == "worker"
    assert study.trials[0].user_attrs["worker"] == this_worker()
    assert storage.keys.count("worker") == 1  # the record's own write of it costs nothing more
