"""Real faults against real launches: kill -9 of a worker, SIGINT and a rerun, a frozen worker taken over,
torn and damaged journals, a full disk, SQLite with several workers. Each test asserts on the final study:
trial states, record statuses, distinct trained architectures, ``retry_of``, and that every result
recorded before the fault is still there with the same values."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from refiner_nas.search.records import EVALUATED
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.study import load_existing_study
from refiner_nas.search.trial import INTERRUPTED

REPOSITORY = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.faults


@pytest.fixture
def launch_command(tmp_path: Path, small_space) -> Callable[..., list[str]]:
    """The CLI command line of a small real search in ``tmp_path/runs`` (study 'faults')."""
    space = small_space(widths=(8, 16, 24, 32, 40, 48), depths=(1, 2))

    def command(*extra: str, trials: int = 4, epochs: int = 6) -> list[str]:
        return [sys.executable, "-m", "refiner_nas", "search", "launch", "--space", str(space),
                "--study", "faults", "--run-dir", str(tmp_path / "runs"), "--trials", str(trials), "--epochs",
                str(epochs), "--batch-size", "32", "--warmup-epochs", "0", "--sampler", "random", "--device", "cpu",
                "--no-early-stop", "--no-progress", *extra]

    return command


def start(command: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    process = start(command)
    output, _ = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(command, process.returncode, output)


def study_in(tmp_path: Path) -> optuna.Study:
    return load_existing_study(SearchSettings(study="faults", run_dir=tmp_path / "runs"))


def wait_for_running_trial(tmp_path: Path, *, not_pid: int | None = None, timeout: float = 240) -> FrozenTrial:
    """A running trial that has finished an epoch (of a worker other than ``not_pid``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        journal = tmp_path / "runs" / "faults" / "journal.log"
        if journal.exists() and journal.stat().st_size:
            for trial in study_in(tmp_path).get_trials(states=(TrialState.RUNNING,)):
                worker = trial.user_attrs.get("worker", "")
                if trial.user_attrs.get("top1_curve") and not worker.endswith(f":{not_pid}"):
                    return trial
        time.sleep(0.1)
    raise AssertionError("no trial got through its first epoch")


def pid_of(trial: FrozenTrial) -> int:
    return int(trial.user_attrs["worker"].rsplit(":", 1)[1])


def completed_values(study: optuna.Study) -> dict[int, list[float]]:
    return {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}


def assert_finished_cleanly(study: optuna.Study, trials: int) -> None:
    """Nothing left running or waiting; ``trials`` evaluated architectures, each trained once; every
    record agrees with its trial's state."""
    all_trials = study.get_trials()
    assert not [t.number for t in all_trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    evaluated = [t for t in all_trials if t.user_attrs.get("status") in EVALUATED]
    assert len(evaluated) == trials
    trained = [t.user_attrs["config_hash"] for t in all_trials if t.user_attrs.get("status") == "trained"]
    assert len(trained) == len(set(trained)), "an architecture was trained twice"
    for trial in all_trials:
        status = trial.user_attrs["status"]
        if trial.state == TrialState.FAIL:
            assert status in ("failed", "duplicate") and trial.user_attrs["fail_reason"]
        else:
            assert status != "failed" and status != "running"


@pytest.mark.slow
def test_a_killed_local_worker_is_requeued_and_the_launch_ends_normally(tmp_path: Path, launch_command) -> None:
    launch = start(launch_command("--workers", "2", trials=5))
    victim = wait_for_running_trial(tmp_path, not_pid=launch.pid)
    before = completed_values(study_in(tmp_path))
    os.kill(pid_of(victim), signal.SIGKILL)
    killed_at = time.monotonic()
    requeued_after = None
    while requeued_after is None and time.monotonic() - killed_at < 30:
        if study_in(tmp_path).get_trials()[victim.number].state == TrialState.FAIL:
            requeued_after = time.monotonic() - killed_at
        time.sleep(0.05)
    output, _ = launch.communicate(timeout=300)

    assert launch.returncode == 0, output
    assert "Pareto front" in output and "Traceback" not in output
    assert requeued_after is not None and requeued_after < 5, "the launch notices a dead worker at once"
    study = study_in(tmp_path)
    killed = study.get_trials()[victim.number]
    assert killed.state == TrialState.FAIL and killed.user_attrs["status"] == "failed"
    # Claimed by the launch (which saw the signal) or by the other worker (which saw the process gone).
    assert killed.user_attrs["fail_reason"] in (f"its worker {victim.user_attrs['worker']} died (killed by SIGKILL)",
                                                f"its worker {victim.user_attrs['worker']} died (the process is gone)")
    assert killed.user_attrs["requeued"]
    retries = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == victim.params
    assert retries[0].user_attrs["status"] == "trained"
    assert {n: v for n, v in completed_values(study).items() if n in before} == before
    assert_finished_cleanly(study, trials=5)


@pytest.mark.slow
def test_sigint_then_the_same_command_trains_the_interrupted_architecture_first(
    tmp_path: Path, launch_command
) -> None:
    command = launch_command(trials=3)
    launch = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # as a background job
    victim = wait_for_running_trial(tmp_path)
    before = completed_values(study_in(tmp_path))
    launch.send_signal(signal.SIGINT)
    output, _ = launch.communicate(timeout=120)
    assert launch.returncode == 130, output
    assert output.strip().splitlines()[-1].startswith("error: interrupted")

    study = study_in(tmp_path)
    interrupted = study.get_trials()[victim.number]
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["fail_reason"] == INTERRUPTED
    assert [t.system_attrs["fixed_params"] for t in study.get_trials(states=(TrialState.WAITING,))] == [victim.params]

    again = run(command)
    assert again.returncode == 0, again.stdout
    study = study_in(tmp_path)
    retry = study.get_trials()[victim.number + 1]
    assert retry.params == victim.params and retry.user_attrs["retry_of"] == victim.number
    assert retry.user_attrs["status"] == "trained"
    assert {n: v for n, v in completed_values(study).items() if n in before} == before
    assert_finished_cleanly(study, trials=3)


@pytest.mark.slow
def test_a_frozen_worker_is_taken_over_and_goes_on_without_losing_a_result(tmp_path: Path, launch_command) -> None:
    """SIGSTOP cuts a worker off as a network partition would: its heartbeats stop, the other worker
    re-queues and trains its trial; woken up, it stops that trial cleanly and goes on."""
    launch = start(launch_command("--workers", "2", "--heartbeat", "1", trials=5, epochs=8))
    victim = wait_for_running_trial(tmp_path, not_pid=launch.pid)
    frozen = pid_of(victim)
    os.kill(frozen, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 60
        while study_in(tmp_path).get_trials()[victim.number].state == TrialState.RUNNING:
            assert time.monotonic() < deadline, "the frozen worker's trial was never declared dead"
            time.sleep(0.2)
    finally:
        os.kill(frozen, signal.SIGCONT)
    output, _ = launch.communicate(timeout=300)
    assert launch.returncode == 0, output

    study = study_in(tmp_path)
    taken = study.get_trials()[victim.number]
    assert taken.state == TrialState.FAIL and "sent no heartbeat" in taken.user_attrs["fail_reason"]
    retries = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert_finished_cleanly(study, trials=5)


def test_a_torn_last_record_is_set_aside_and_the_study_continues(tmp_path: Path, launch_command) -> None:
    first = run(launch_command(trials=2, epochs=1))
    assert first.returncode == 0, first.stdout
    journal = tmp_path / "runs" / "faults" / "journal.log"
    whole = journal.read_bytes()
    before = completed_values(study_in(tmp_path))
    journal.write_bytes(whole + b'{"op_code":8,"worker_id":"x","trial_id":0,"user_attr":{"to')  # cut mid-record

    again = run(launch_command(trials=3, epochs=1))
    assert again.returncode == 0, again.stdout
    assert "incomplete last record (58 bytes" in again.stdout
    backups = list(journal.parent.glob("journal.log.torn-*"))
    assert len(backups) == 1 and backups[0].read_bytes().startswith(b'{"op_code":8')
    assert journal.read_bytes().startswith(whole)
    study = study_in(tmp_path)
    assert {n: v for n, v in completed_values(study).items() if n in before} == before
    assert_finished_cleanly(study, trials=3)


@pytest.mark.parametrize("damage", [b"not a record\n", b"\xff\xfe\x00garbled\n"], ids=["text", "bytes"])
def test_a_journal_damaged_in_the_middle_is_never_written_to(tmp_path: Path, launch_command, damage: bytes) -> None:
    assert run(launch_command(trials=1, epochs=1)).returncode == 0
    journal = tmp_path / "runs" / "faults" / "journal.log"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:3]) + damage + b"".join(lines[3:]))
    digest = hashlib.sha256(journal.read_bytes()).hexdigest()

    result = run(launch_command(trials=2, epochs=1))
    assert result.returncode == 2
    last = result.stdout.strip().splitlines()
    assert len(last) == 1 and last[0].startswith(f"error: study journal {journal} is damaged at line 4 (byte ")
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == digest


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 1 MiB tmpfs (needs root, as in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` but ``leave`` bytes."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler.write_bytes(b"\0" * max(free - leave, 0))
    return filler


def test_a_full_disk_stops_the_launch_with_one_line_and_keeps_the_journal_readable(
    tmp_path: Path, launch_command, tiny_disk: Path
) -> None:
    def command(trials: int) -> list[str]:
        base = launch_command(trials=trials, epochs=1)
        return [*base[: base.index("--run-dir") + 1], str(tiny_disk), *base[base.index("--run-dir") + 2 :]]

    assert run(command(1)).returncode == 0
    journal = tiny_disk / "faults" / "journal.log"
    settings = SearchSettings(study="faults", run_dir=tiny_disk)
    before = completed_values(load_existing_study(settings))
    filler = fill(tiny_disk, leave=0)

    result = run(command(3))
    assert result.returncode == 2
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith(f"error: cannot write to the study journal {journal}: No space left on device")
    assert "Traceback" not in result.stdout
    assert journal.read_bytes().endswith(b"\n")
    assert completed_values(load_existing_study(settings)) == before  # readable, nothing lost

    filler.unlink()
    again = run(command(3))
    assert again.returncode == 0, again.stdout
    study = load_existing_study(settings)
    assert {n: v for n, v in completed_values(study).items() if n in before} == before
    assert_finished_cleanly(study, trials=3)


def test_sqlite_with_several_workers_is_refused_before_any_trial(tmp_path: Path, launch_command) -> None:
    database = tmp_path / "study.db"
    result = run(launch_command("--workers", "2", "--storage", f"sqlite:///{database}"))
    assert result.returncode == 2
    assert result.stdout.strip() == (
        f"error: --storage sqlite:///{database}: SQLite does not take several workers (--workers 2); use the default "
        "journal file (leave out --storage) or postgresql://user:password@host/db"
    )
    assert not database.exists()


@pytest.mark.slow
@pytest.mark.parametrize(("stop", "workers"), [(signal.SIGTERM, 1), (signal.SIGTERM, 2), (signal.SIGINT, 2)],
                         ids=["sigterm", "sigterm-2-workers", "sigint-2-workers"])
def test_a_signal_to_the_process_group_stops_the_launch_in_one_line_and_the_same_command_resumes(
    tmp_path: Path, launch_command, stop: signal.Signals, workers: int
) -> None:
    """What a cluster scheduler (SIGTERM) or Ctrl-C in a terminal (SIGINT) sends: the whole process group.
    The launch exits 128 + the signal's number, as a process the signal ended would (143, 130)."""
    command = launch_command("--workers", str(workers), trials=4)
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    launch = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)  # its own process group, as a scheduler's job step
    wait_for_running_trial(tmp_path)
    before = completed_values(study_in(tmp_path))
    os.killpg(launch.pid, stop)
    output, _ = launch.communicate(timeout=120)
    assert launch.returncode == 128 + stop, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [output.strip().splitlines()[-1]] and errors[0].startswith(f"error: interrupted ({stop.name}): ")
    assert "Traceback" not in output

    study = study_in(tmp_path)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    interrupted = [t for t in study.get_trials() if t.user_attrs.get("fail_reason") == INTERRUPTED]
    assert interrupted and all(t.state == TrialState.FAIL and t.user_attrs["requeued"] for t in interrupted)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in waiting) == sorted(t.number for t in interrupted)
    assert completed_values(study) == before  # nothing finished during the stop was lost or changed

    again = run(command)
    assert again.returncode == 0, again.stdout
    study = study_in(tmp_path)
    for trial in interrupted:
        retries = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == trial.number]
        assert len(retries) == 1 and retries[0].params == trial.params
        assert retries[0].state == TrialState.COMPLETE and retries[0].user_attrs["status"] == "trained"
    assert {n: v for n, v in completed_values(study).items() if n in before} == before
    assert_finished_cleanly(study, trials=4)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_while_local_workers_start_stops_the_launch_without_a_traceback(
    tmp_path: Path, launch_command, stop: signal.Signals
) -> None:
    """Sent while the worker processes import (they would print a KeyboardInterrupt traceback, or die of
    SIGTERM before they could record anything): they start with the signals blocked until handled."""
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    launch = subprocess.Popen(launch_command("--workers", "2", trials=2), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(subprocess.run(["pgrep", "-P", str(launch.pid)], capture_output=True, text=True).stdout.split()) < 3:
        assert time.monotonic() < deadline and launch.poll() is None, "the launch started no workers"
        time.sleep(0.02)  # the resource tracker and two workers
    os.killpg(launch.pid, stop)
    output, _ = launch.communicate(timeout=120)
    assert launch.returncode == 128 + stop, output
    assert "Traceback" not in output and output.strip().splitlines()[-1].startswith(f"error: interrupted ({stop.name})")
    assert not study_in(tmp_path).get_trials(states=(TrialState.RUNNING,))
