"""Ctrl-C of a launch with two workers (real processes, SIGINT to the process group as a terminal sends it):
the line says how many trials in flight were re-queued, and ``search status`` lists them as waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from refiner_nas.search.records import TrialRecord
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.study import load_existing_study, requeued_waiting, study_status

REPOSITORY = Path(__file__).resolve().parents[2]


def test_a_requeued_trial_is_waiting_not_running() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    failed = TrialRecord(status="failed", fail_reason="interrupted", requeued=True).model_dump(mode="json")
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=failed))
    study.enqueue_trial({}, user_attrs={"retry_of": 0})
    study.enqueue_trial({})  # enqueued by hand: waiting, but no retry
    status = study_status(study)
    assert status.states == {"fail": 1, "waiting": 2}
    assert status.statuses == {"failed": 1, "waiting": 2}
    assert requeued_waiting(study) == 1


def running_in_training(runs: Path, count: int, timeout: float = 240) -> list[int]:
    """The numbers of ``count`` running trials that each recorded an epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (runs / "ctrl-c" / "journal.log").is_file():
            study = load_existing_study(SearchSettings(study="ctrl-c", run_dir=runs))
            trials = study.get_trials(states=(TrialState.RUNNING,))
            running = [t.number for t in trials if t.user_attrs.get("top1_curve")]
            if len(running) >= count:
                return running
        time.sleep(0.1)
    raise AssertionError(f"{count} trials did not get through an epoch at once")


@pytest.mark.slow
def test_ctrl_c_of_two_workers_requeues_both_trials_and_status_shows_them_waiting(tmp_path: Path, small_space) -> None:
    runs = tmp_path / "runs"
    space = small_space(widths=(8, 16, 24, 32, 40, 48), depths=(1, 2))
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "refiner_nas", "search", "launch", "--space", str(space), "--study", "ctrl-c",
               "--run-dir", str(runs), "--trials", "6", "--epochs", "30", "--warmup-epochs", "0", "--sampler",
               "random", "--device", "cpu", "--no-early-stop", "--no-progress", "--workers", "2"]
    launch = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        in_flight = running_in_training(runs, 2)
        os.killpg(launch.pid, signal.SIGINT)  # what Ctrl-C does: every process of the foreground group
        output, _ = launch.communicate(timeout=120)
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
    assert launch.returncode == 130, output
    assert output.strip().splitlines()[-1].startswith("error: interrupted (SIGINT): 2 trials in flight were "
                                                      "recorded as failed (interrupted) and re-queued")

    study = load_existing_study(SearchSettings(study="ctrl-c", run_dir=runs))
    assert all(study.trials[number].state == TrialState.FAIL for number in in_flight)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in waiting) == sorted(in_flight)
    status = subprocess.run([sys.executable, "-m", "refiner_nas", "search", "status", "--study", "ctrl-c",
                             "--run-dir", str(runs)], env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    states, records = status.stdout.splitlines()[1:3]
    assert "2 waiting" in states and "running" not in states
    assert records.startswith("  records: ") and "2 waiting" in records and "running" not in records
