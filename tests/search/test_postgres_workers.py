"""Independent workers on a real PostgreSQL server (``.ci/postgres start`` provides one in CI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.exceptions import StorageInternalError
from optuna.trial import TrialState

from refiner_nas.benchmarks.postgres_server import postgres_server as control_server
from refiner_nas.search.records import TrialRecord
from refiner_nas.search.runner import prepare_space
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.storages import RetryingStorage, StorageError, open_storage
from refiner_nas.search.storages._proxy import StorageProxy
from refiner_nas.search.study import create_or_resume_study, load_existing_study

POSTGRES_URL = os.environ.get("REFINER_NAS_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(
    POSTGRES_URL is None, reason="set REFINER_NAS_POSTGRES_URL (source .ci/postgres start) to run against PostgreSQL"
)
REPOSITORY = Path(__file__).resolve().parents[2]


def start_worker(study: str, run_dir: Path) -> subprocess.Popen:
    command = [sys.executable, "-c", "from refiner_nas.cli import main; main()", "search", "worker", "--study", study,
               "--storage", POSTGRES_URL, "--run-dir", str(run_dir), "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_slow_launch(space: Path, study_name: str, run_dir: Path, *options: str, **env: str) -> subprocess.Popen:
    """A launch on the PostgreSQL server whose trials last several seconds each (8 epochs, batch 32, one
    thread), so a fault can be sent mid-trial; ``env`` adds environment variables."""
    command = [sys.executable, "-m", "refiner_nas", "search", "launch", "--space", str(space), "--study", study_name,
               "--storage", POSTGRES_URL, "--run-dir", str(run_dir), "--epochs", "8", "--batch-size", "32",
               "--warmup-epochs", "0", "--sampler", "random", "--device", "cpu", "--no-early-stop", "--no-progress",
               *options]
    variables = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen(command, env=variables, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def running_trial_of(study: optuna.Study, pid: int) -> int | None:
    """A trial that worker ``pid`` is training and has finished one to three of its 12 epochs of (so a kill
    now lands mid-training, not as the trial ends)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = TrialRecord.from_trial(trial)
        if record.worker and record.worker.endswith(f":{pid}") and 1 <= len(record.top1_curve) <= 3:
            return trial.number
    return None


@pytest.mark.slow
@pytest.mark.faults
@needs_postgres
def test_two_workers_one_killed_mid_trial(tmp_path: Path, small_space) -> None:
    space = small_space(widths=(8, 16, 24, 32, 40, 48), depths=(1, 2))
    settings = SearchSettings(
        space=str(space), study=f"workers-{uuid.uuid4().hex[:8]}", storage=POSTGRES_URL, run_dir=tmp_path / "runs",
        trials=5, epochs=12, warmup_epochs=0.0, sampler="random", early_stop=False, heartbeat_s=1, device="cpu",
        batch_size=256,
    )
    create_or_resume_study(settings, prepare_space(settings))  # the launch creates the schema and the study once

    victim = start_worker(settings.study_name, tmp_path / "a")
    survivor = start_worker(settings.study_name, tmp_path / "b")
    study = load_existing_study(settings)
    deadline = time.monotonic() + 240
    killed = None
    while killed is None and time.monotonic() < deadline:
        killed = running_trial_of(study, victim.pid)
        time.sleep(0.2)
    assert killed is not None, "the first worker never got into a trial"
    completed_before_kill = {t.number for t in study.get_trials(states=(TrialState.COMPLETE,))}
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    output, _ = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, output

    trials = load_existing_study(settings).get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    complete = {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert len(complete) >= 5
    assert completed_before_kill <= complete
    states = {t.number: t.state for t in trials}
    assert states[killed] == TrialState.FAIL
    retries = [t for t in trials if TrialRecord.from_trial(t).retry_of == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == next(t.params for t in trials if t.number == killed)


RACE = """
import sys
import optuna
from pathlib import Path
from refiner_nas.search.storages._open import open_storage
storage = open_storage(sys.argv[1], Path("."))
optuna.create_study(study_name="raced", storage=storage, directions=["maximize"], load_if_exists=True)
"""


@pytest.mark.slow
@needs_postgres
def test_workers_started_together_do_not_race_on_schema_creation(tmp_path: Path) -> None:
    import sqlalchemy

    database = f"refiner_race_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {database}"))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{database}"
    try:
        env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
        starts = [subprocess.Popen([sys.executable, "-c", RACE, url], env=env, stderr=subprocess.PIPE, text=True)
                  for _ in range(4)]
        errors = [process.communicate(timeout=120)[1] for process in starts]
        assert [process.returncode for process in starts] == [0, 0, 0, 0], errors
        assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["raced"]
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        admin.dispose()


@needs_postgres
@pytest.mark.parametrize("wrong", ["password", "database"])
def test_wrong_credentials_or_database_fail_at_once_with_one_clear_line(tmp_path: Path, caplog, wrong: str) -> None:
    url = (POSTGRES_URL.replace("refiner:refiner@", "refiner:not-the-password@") if wrong == "password" else
           POSTGRES_URL.rsplit("/", 1)[0] + "/no_such_database")
    with pytest.raises(StorageError) as error:
        open_storage(url, tmp_path)  # with the default patience of 90 s: no retry, or this would take that long
    message = str(error.value)
    assert "\n" not in message and "not-the-password" not in message
    assert ("password authentication failed" if wrong == "password" else 'database "no_such_database" does not exist') \
        in message and "check that the server is running" in message
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


def test_unreachable_database_fails_before_any_trial(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("REFINER_NAS_STORAGE_PATIENCE", "1")  # refused connections are retried for this long
    settings = SearchSettings(storage="postgresql://user:secret@127.0.0.1:9/nowhere", run_dir=tmp_path)
    with pytest.raises(StorageError, match=r"cannot open storage postgresql://user:\*\*\*@127.0.0.1:9/nowhere: .*"
                                           r"refused"):
        create_or_resume_study(settings, prepare_space(settings))
    assert [r for r in caplog.records if "not up" in r.getMessage()], "a refused first connection is retried"


def postgres_server(action: str) -> None:
    """Stop or start the test server (``.ci/postgres start`` exports its data folder)."""
    control_server(os.environ["REFINER_NAS_PGDATA"], POSTGRES_URL, action)


@pytest.mark.slow
@pytest.mark.faults
@needs_postgres
@pytest.mark.skipif("REFINER_NAS_PGDATA" not in os.environ, reason="needs the server of .ci/postgres to restart it")
def test_a_postgresql_restart_mid_trial_loses_nothing(tmp_path: Path, small_space) -> None:
    space = small_space(widths=(8, 16, 24, 32, 40, 48), depths=(1, 2))
    study_name = f"restart-{uuid.uuid4().hex[:8]}"
    launch = start_slow_launch(space, study_name, tmp_path / "runs", "--workers", "2", "--heartbeat", "2",
                               "--trials", "4")
    settings = SearchSettings(study=study_name, storage=POSTGRES_URL, run_dir=tmp_path / "runs")
    deadline = time.monotonic() + 240
    victim = None
    while victim is None:
        assert time.monotonic() < deadline and launch.poll() is None, "no trial got through its first epoch"
        time.sleep(0.2)
        try:
            running = load_existing_study(settings).get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # not created yet
            continue
        # Both workers mid-trial: a restart while a worker is still starting (opening the storage) is another
        # fault, which ends that worker (the launch then says to run it again).
        if len(running) >= 2:
            victim = next((t for t in running if t.user_attrs.get("top1_curve")), None)
    postgres_server("stop")
    time.sleep(10)  # five heartbeats missed by every worker
    postgres_server("start")
    output, _ = launch.communicate(timeout=300)
    assert launch.returncode == 0, output

    trials = load_existing_study(settings).get_trials()
    assert [t.number for t in trials if t.state != TrialState.COMPLETE] == [], output
    assert trials[victim.number].user_attrs["status"] == "trained"
    assert not [t for t in trials if t.user_attrs.get("retry_of") is not None]
    evaluated = [t.user_attrs["config_hash"] for t in trials if t.user_attrs["status"] == "trained"]
    assert len(evaluated) == len(set(evaluated)) == 4


OPEN_AND_CREATE = """
import sys
import optuna
from pathlib import Path
from refiner_nas.search.storages import open_storage
optuna.create_study(study_name=sys.argv[2], storage=open_storage(sys.argv[1], Path(".")), load_if_exists=True)
print("opened")
"""


@pytest.mark.slow
@pytest.mark.faults
@needs_postgres
@pytest.mark.skipif("REFINER_NAS_PGDATA" not in os.environ, reason="needs the server of .ci/postgres to restart it")
def test_a_worker_started_while_postgresql_restarts_waits_for_it(tmp_path: Path) -> None:
    study_name = f"late-{uuid.uuid4().hex[:8]}"
    postgres_server("stop")
    try:
        env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "REFINER_NAS_STORAGE_PATIENCE": "60"}
        opener = subprocess.Popen([sys.executable, "-c", OPEN_AND_CREATE, POSTGRES_URL, study_name], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(opener.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not [line for line in lines if "not up" in line]:  # refused at least once
            assert opener.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.1)
    finally:
        postgres_server("start")
    opener.wait(timeout=120)
    reader.join(timeout=10)
    output = "".join(lines)
    assert opener.returncode == 0, output
    assert "Connection refused); retrying in" in output and output.strip().splitlines()[-1] == "opened"
    assert study_name in [s.study_name for s in optuna.get_all_study_summaries(POSTGRES_URL)]


class LostAnswers(StorageProxy):  # type: ignore[misc, valid-type]
    """Loses the answer of the first call of each of ``operations``: the call takes effect on the server,
    then the caller sees a dropped connection (as when the server commits and the connection dies)."""

    def __init__(self, inner, operations: set[str]) -> None:
        super().__init__(inner)
        self.pending = set(operations)

    def _call(self, name: str, *args, **kwargs):
        result = getattr(self.inner, name)(*args, **kwargs)
        if name in self.pending:
            self.pending.discard(name)
            raise StorageInternalError("server closed the connection unexpectedly")
        return result


@needs_postgres
def test_retried_calls_whose_answer_was_lost_do_not_happen_twice() -> None:
    operations = {"create_new_trial", "set_trial_param", "set_trial_state_values"}
    lossy = LostAnswers(optuna.storages.RDBStorage(POSTGRES_URL), operations)
    storage = RetryingStorage(lossy, where="test", sleep=lambda _: None)
    study = optuna.create_study(study_name=f"lost-{uuid.uuid4().hex[:8]}", storage=storage, direction="maximize")
    trial = study.ask()
    x = trial.suggest_float("x", 0, 1)
    study.tell(trial, 0.5)
    assert not lossy.pending  # each operation lost its first answer
    trials = optuna.load_study(study_name=study.study_name, storage=POSTGRES_URL).get_trials()
    assert [(t.number, t.state, t.params, t.values) for t in trials] == [(0, TrialState.COMPLETE, {"x": x}, [0.5])]

    lossy.pending = {"create_new_trial"}  # enqueue_trial creates a waiting trial from a template
    study.enqueue_trial({"x": 0.25})
    waiting = optuna.load_study(study_name=study.study_name, storage=POSTGRES_URL).get_trials(
        states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"x": 0.25}]


@pytest.mark.slow
@pytest.mark.faults
@needs_postgres
@pytest.mark.skipif("REFINER_NAS_PGDATA" not in os.environ, reason="needs the server of .ci/postgres to restart it")
def test_postgresql_down_past_the_patience_stops_the_worker_and_the_rerun_loses_nothing(
    tmp_path: Path, small_space
) -> None:
    """Down longer than the patience (here 3 s through REFINER_NAS_STORAGE_PATIENCE; 90 s by default, the
    same mechanism): the worker stops in one line; once the database is back, the same command re-queues
    the trial it was training (its process is gone) and completes the study."""
    space = small_space(widths=(8, 16, 24, 32, 40, 48), depths=(1, 2))
    study_name = f"down-{uuid.uuid4().hex[:8]}"
    options = ("--heartbeat", "1", "--trials", "3")
    launch = start_slow_launch(space, study_name, tmp_path / "runs", *options, REFINER_NAS_STORAGE_PATIENCE="3")
    settings = SearchSettings(study=study_name, storage=POSTGRES_URL, run_dir=tmp_path / "runs")
    deadline = time.monotonic() + 240
    victim = None
    while victim is None:
        assert time.monotonic() < deadline and launch.poll() is None, "no trial got through its first epoch"
        time.sleep(0.2)
        try:
            victim = running_trial_of(load_existing_study(settings), launch.pid)
        except KeyError:  # not created yet
            continue
    before = {t.number: t.values for t in load_existing_study(settings).get_trials(states=(TrialState.COMPLETE,))}
    postgres_server("stop")
    try:
        output, _ = launch.communicate(timeout=120)
    finally:
        postgres_server("start")
    assert launch.returncode == 2, output
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"error: storage {POSTGRES_URL.replace(':refiner@', ':***@')} unreachable for 3 s (")
    assert last.endswith("the trials it recorded are kept: run the same command again once it is back")
    assert "Traceback" not in output and [line for line in output.splitlines() if line.startswith("error:")] == [last]

    again = start_slow_launch(space, study_name, tmp_path / "runs", *options, REFINER_NAS_STORAGE_PATIENCE="3")
    again_output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, again_output
    trials = load_existing_study(settings).get_trials()
    cut_off = trials[victim]
    assert cut_off.state == TrialState.FAIL and cut_off.user_attrs["fail_reason"].endswith("(the process is gone)")
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim]
    assert len(retries) == 1 and retries[0].params == cut_off.params and retries[0].user_attrs["status"] == "trained"
    assert {t.number: t.values for t in trials if t.number in before} == before
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    trained = [t.user_attrs["config_hash"] for t in trials if t.user_attrs.get("status") == "trained"]
    assert len(trained) == len(set(trained)) == 3
