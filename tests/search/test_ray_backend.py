"""The Ray Tune backend on a local Ray instance (``ray.init(num_cpus=2)``) and the built-in digits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from refiner_nas.cli import app
from refiner_nas.search.records import TrialRecord
from refiner_nas.search.runner import (
    RAY_INTERRUPTED,
    RayOptions,
    launch_ray,
    ray_folder,
    ray_settings,
    resume_ray,
)
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.study import load_existing_study, study_front

REPOSITORY = Path(__file__).resolve().parents[2]
OPTIONS = RayOptions(num_cpus=2, max_concurrent=2, cpus_per_trial=1)


@pytest.fixture
def ray_shutdown():
    yield
    import ray

    ray.shutdown()


@pytest.fixture
def settings_for(tmp_path: Path, small_space):
    def make(**changes) -> SearchSettings:
        fields = {"space": str(small_space(widths=(8, 16, 24, 32))), "study": "ray-small", "run_dir": tmp_path / "runs",
                  "trials": 3, "epochs": 1, "warmup_epochs": 0.0, "device": "cpu", "batch_size": 256, **changes}
        return SearchSettings(**fields)

    return make


@pytest.mark.slow
def test_ray_search_writes_the_same_records_and_its_front_is_queryable(settings_for, ray_shutdown, capfd) -> None:
    settings = settings_for()
    study = launch_ray(settings, OPTIONS, show_progress=True)
    shown = capfd.readouterr()
    finished = [line for line in shown.out.splitlines() if line.startswith("trial ")]
    assert len(finished) == 3 and all(" complete (trained): top1 " in line for line in finished)  # as Optuna's, piped
    assert "Started a local Ray instance" not in shown.out + shown.err  # not Ray's INFO lines
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    for trial in trials:
        record = TrialRecord.from_trial(trial)
        assert record.backend == "ray" and record.ray_trial_id
        assert record.status == "trained" and len(record.top1_curve) == 1
        assert trial.values == [record.top1, pytest.approx(record.params / 1e6)]
        assert record.config["embed_dim"] in (8, 16, 24, 32) and record.provenance["torch"]
    front = study_front(study)
    assert not front.empty and set(front["trial"]) <= {t.number for t in trials}
    assert (ray_folder(settings) / "tuner.pkl").exists()

    result = CliRunner().invoke(app, ["pareto", "--study", settings.study_name, "--run-dir", str(settings.run_dir),
                                      "--results-dir", str(settings.run_dir), "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("kind,"))
    rows = [line.split(",") for line in lines[header + 1:] if line.startswith("proxy,")]
    listed = {int(row[lines[header].split(",").index("trial")]) for row in rows}
    assert listed == set(front["trial"])


@pytest.mark.slow
@pytest.mark.faults
def test_an_interrupted_ray_run_resumes_without_rerunning_finished_trials(settings_for, ray_shutdown) -> None:
    settings = settings_for(trials=4, epochs=2, study="ray-resume")
    command = [sys.executable, "-c", "from refiner_nas.cli import main; main()", "search", "launch", "--backend", "ray",
               "--space", settings.space, "--study", settings.study_name, "--run-dir", str(settings.run_dir),
               "--trials", "4", "--epochs", "2", "--warmup-epochs", "0", "--device", "cpu", "--batch-size", "256",
               "--max-concurrent", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    launched = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    journal = settings.study_dir / "journal.log"
    deadline = time.monotonic() + 300
    finished_before: dict[int, object] = {}
    while time.monotonic() < deadline and not finished_before:
        time.sleep(1)
        if journal.exists() and journal.stat().st_size:
            finished_before = {t.number: t.datetime_complete for t in
                               load_existing_study(settings).get_trials(states=(TrialState.COMPLETE,))}
    assert finished_before, "no Ray trial finished in time"
    launched.send_signal(signal.SIGINT)
    output, _ = launched.communicate(timeout=120)
    # As an Optuna launch: exit 130, one line saying what was kept and how to go on, no traceback.
    assert launched.returncode == 130, output
    assert [line for line in output.splitlines() if line.startswith("error:")] == [output.strip().splitlines()[-1]]
    assert "Resume experiment with" not in output and "Stop signal received" not in output  # not Ray's own hints
    assert output.strip().splitlines()[-1].endswith(
        f"continue it with: refiner-nas search resume --study ray-resume --run-dir {settings.run_dir}")
    assert "Traceback" not in output
    study = load_existing_study(settings)
    assert not study.get_trials(states=(TrialState.RUNNING,))  # "0 running": each was recorded
    interrupted = study.get_trials(states=(TrialState.FAIL,))
    assert all(t.user_attrs["fail_reason"] == RAY_INTERRUPTED for t in interrupted)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) < 4

    study = resume_ray(study=settings.study_name, storage=None, run_dir=settings.run_dir, options=OPTIONS)
    trials = study.get_trials()
    complete = {t.number: t.datetime_complete for t in trials if t.state == TrialState.COMPLETE}
    assert len(complete) == 4 and len(trials) == 4 + len(interrupted)
    for number, finished_at in finished_before.items():
        assert complete[number] == finished_at  # told once, never run again
    for trial in interrupted:  # run again by Ray, recorded once as its retry
        retries = [t for t in trials if t.user_attrs.get("retry_of") == trial.number]
        assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == trial.params
    ray_ids = [TrialRecord.from_trial(t).ray_trial_id for t in trials if t.state == TrialState.COMPLETE]
    assert len(set(ray_ids)) == 4


def test_an_over_budget_ray_trial_is_told_to_optuna_as_pruned_with_its_record() -> None:
    # The searcher alone: no Ray instance is started.
    import json

    import optuna

    from refiner_nas.search.runner._ray_searcher import RecordingOptunaSearch, SpaceSuggestion

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    for number, prune in enumerate((True, False)):  # False: the GP sampler (prunes_over_budget)
        searcher = RecordingOptunaSearch(space=SpaceSuggestion("tiny"), metric=["top1", "params"],
                                         mode=["max", "min"], sampler=optuna.samplers.RandomSampler(seed=0),
                                         study_name="s", storage=storage, prune_over_budget=prune)
        searcher.suggest("over")
        # What ray_trial reports for an architecture over budget: values with top-1 0, record, constraints.
        searcher.on_trial_complete("over", result={
            "top1": 0.0, "params": 1.0, "epoch": 2, "record": json.dumps({"status": "over_budget", "top1": 0.0}),
            "constraints": json.dumps({"max_params": 0.5})})
        trial = study.trials[number]
        assert trial.state == (TrialState.PRUNED if prune else TrialState.COMPLETE)
        assert trial.values == (None if prune else [0.0, 1.0])
        assert trial.user_attrs["status"] == "over_budget" and trial.constraints == {"max_params": 0.5}


def test_a_ray_trial_recorded_as_interrupted_is_recorded_as_a_retry_when_resume_runs_it() -> None:
    # The searcher alone: the launch was stopped mid-trial, then Tuner.restore ran the trial again.
    import json

    import optuna

    from refiner_nas.search.runner._ray import _record_interrupted
    from refiner_nas.search.runner._ray_searcher import RecordingOptunaSearch, SpaceSuggestion

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    searcher = RecordingOptunaSearch(space=SpaceSuggestion("tiny"), metric=["top1", "params"], mode=["max", "min"],
                                     sampler=optuna.samplers.RandomSampler(seed=0), study_name="s", storage=storage)
    searcher.suggest("cut")
    _record_interrupted(study, study.trials[0])
    searcher.on_trial_complete("cut", result={
        "top1": 40.0, "params": 2.0, "epoch": 3, "record": json.dumps({"status": "trained", "top1": 40.0}),
        "constraints": "{}"})
    interrupted, retry = study.trials
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["fail_reason"] == RAY_INTERRUPTED
    assert retry.state == TrialState.COMPLETE and retry.values == [40.0, 2.0] and retry.params == interrupted.params
    assert retry.user_attrs["retry_of"] == 0 and retry.user_attrs["status"] == "trained"


def test_ray_runs_no_pause_by_default_and_refuses_one_asked_for() -> None:
    # Where EHVI runs, launches pause and resume by default; Ray's searcher cannot resume a trial.
    settings = SearchSettings(space="tabular")
    assert settings.early_stop is None
    assert ray_settings(settings).early_stop is False
    assert ray_settings(settings.model_copy(update={"early_stop": True, "stopper": "dominance"})).early_stop
    with pytest.raises(ValueError, match="--stopper promote: Ray trials cannot be paused"):
        ray_settings(settings.model_copy(update={"early_stop": True}))
    with pytest.raises(ValueError, match="--prescreen 4"):
        ray_settings(settings.model_copy(update={"prescreen": 4}))
