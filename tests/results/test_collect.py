"""Collecting trials into the stored leaderboard: values, incremental and idempotent updates, errors."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from refiner_nas.results.collect import StudyNotFoundError, architecture_label, collect
from refiner_nas.results.schema import COLUMN_NAMES, SCHEMA_VERSION, SchemaError
from refiner_nas.results.store import leaderboard_path, load_leaderboard


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_every_trial_becomes_one_row_with_its_record(tmp_path: Path, make_study, tiny_config) -> None:
    small, refined = tiny_config(), tiny_config(attention="refiner", expansion_ratio=2, depth=2)
    study = make_study("a", [
        (small, 71.5, {}),
        (refined, 80.25, {}),
        (tiny_config(embed_dim=32), 0.0, {"status": "over_budget", "constraints": {"max_params": 5.0},
                                          "state": TrialState.PRUNED}),
        (tiny_config(depth=3), None, {"status": "pruned", "state": TrialState.PRUNED}),
    ])
    result = collect(studies=["a"], run_dir=tmp_path / "runs", results_dir=tmp_path / "res")
    frame = result.frame
    assert list(frame.columns) == list(COLUMN_NAMES) and len(frame) == 4
    assert (tmp_path / "res" / "leaderboard.parquet").is_file() and result.studies == ("a",)
    assert (result.report.added, result.report.updated, result.report.unchanged) == (4, 0, 0)
    by_trial = frame.set_index("trial")
    for trial in study.get_trials():
        row, attrs = by_trial.loc[trial.number], trial.user_attrs
        assert row["params_m"] == pytest.approx(attrs["params"] / 1e6)
        assert row["macs_g"] == pytest.approx(attrs["macs"] / 1e9)
        assert row["flops_g"] == pytest.approx(attrs["flops"] / 1e9)
        assert row["config_hash"] == attrs["config_hash"] and json.loads(row["config"]) == attrs["config"]
        assert row["img_size"] == 16 and row["dataset"] == "digits" and row["epochs"] == 2
        assert row["study"] == "a" and row["kind"] == "proxy" and row["schema_version"] == SCHEMA_VERSION
        assert row["storage"] == str(tmp_path / "runs" / "a" / "journal.log")
    assert by_trial.loc[1, "top1"] == 80.25 and by_trial.loc[1, "model"] == architecture_label(refined.to_dict())
    assert by_trial.loc[1, "model"] == "refiner-2x16h2-r2k3@16"
    assert list(by_trial["state"]) == ["complete", "complete", "pruned", "pruned"]
    assert list(by_trial["feasible"]) == [True, True, False, True]
    assert by_trial.loc[2, "status"] == "over_budget" and pd.isna(by_trial.loc[3, "top1"])


def test_recollecting_is_incremental_and_idempotent(tmp_path: Path, make_study, tiny_config, trial_attrs) -> None:
    study = make_study("a", [(tiny_config(), 70.0, {}), (tiny_config(depth=2), 75.0, {})])
    make_study("b", [(tiny_config(embed_dim=8), 60.0, {})])
    run_dir, results = tmp_path / "runs", tmp_path / "res"
    first = collect(run_dir=run_dir, results_dir=results)  # every study under runs/
    assert sorted(first.studies) == ["a", "b"] and len(first.frame) == 3
    modified = leaderboard_path(results).stat().st_mtime_ns

    again = collect(studies=["a", "b"], run_dir=run_dir, results_dir=results)
    assert (again.report.added, again.report.updated, again.report.unchanged) == (0, 0, 3)
    assert len(again.frame) == 3 and again.frame["row_key"].is_unique
    assert leaderboard_path(results).stat().st_mtime_ns == modified  # nothing changed, nothing written

    running = study.ask()  # a trial still running when collected, finished later
    for key, value in trial_attrs(tiny_config(depth=3), top1=None, status="running").items():
        running.set_user_attr(key, value)
    step = collect(studies=["a"], run_dir=run_dir, results_dir=results)
    assert (step.report.added, step.report.unchanged) == (1, 2)
    running.set_user_attr("top1", 77.0)
    running.set_user_attr("status", "trained")
    study.tell(running, [77.0, 0.01])
    final = collect(studies=["a"], run_dir=run_dir, results_dir=results)
    assert (final.report.added, final.report.updated, final.report.unchanged) == (0, 1, 2)
    stored = load_leaderboard(results)
    assert len(stored) == 4 and stored["row_key"].is_unique  # study b's row is kept
    row = stored[(stored["study"] == "a") & (stored["trial"] == 2)].iloc[0]
    assert row["state"] == "complete" and row["top1"] == 77.0


def test_studies_from_a_storage_url(tmp_path: Path, tiny_config, trial_attrs) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    for name in ("x", "y"):
        study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"])
        study.add_trial(optuna.trial.create_trial(values=[50.0, 0.1], user_attrs=trial_attrs(tiny_config(), top1=50.0)))
    result = collect(storages=[url], run_dir=tmp_path / "runs", results_dir=tmp_path / "res")
    assert sorted(result.studies) == ["x", "y"] and set(result.frame["storage"]) == {url}
    only = collect(studies=["y"], storages=[url], run_dir=tmp_path / "runs", results_dir=tmp_path / "res2")
    assert only.studies == ("y",)
    with pytest.raises(StudyNotFoundError, match=r"no study 'z' in sqlite:///.*; check --study and --storage"):
        collect(studies=["z"], storages=[url], run_dir=tmp_path / "runs", results_dir=tmp_path / "res")


def test_missing_studies_and_storages_are_named_and_nothing_is_created(tmp_path: Path, make_study, tiny_config) -> None:
    make_study("a", [(tiny_config(), 70.0, {})])
    run_dir = tmp_path / "runs"
    missing = r"no study 'nope': .*nope/journal.log does not exist \(studies under .*: a\)"
    with pytest.raises(StudyNotFoundError, match=missing):
        collect(studies=["nope"], run_dir=run_dir, results_dir=tmp_path / "res")
    assert not (run_dir / "nope").exists() and not (tmp_path / "res").exists()
    missing_db = tmp_path / "missing.db"
    with pytest.raises(StudyNotFoundError, match="does not exist"):
        collect(storages=[f"sqlite:///{missing_db}"], run_dir=run_dir, results_dir=tmp_path / "res")
    assert not missing_db.exists()
    with pytest.raises(StudyNotFoundError, match="no study journals under"):
        collect(run_dir=tmp_path / "empty", results_dir=tmp_path / "res")


def test_a_leaderboard_of_another_schema_version_is_refused(tmp_path: Path, make_study, tiny_config) -> None:
    make_study("a", [(tiny_config(), 70.0, {})])
    frame = collect(run_dir=tmp_path / "runs", results_dir=tmp_path / "res").frame
    frame.assign(schema_version=SCHEMA_VERSION + 1).to_parquet(leaderboard_path(tmp_path / "res"))
    newer = f"schema version\\(s\\) \\[{SCHEMA_VERSION + 1}\\].*collect the studies again"
    with pytest.raises(SchemaError, match=newer):
        load_leaderboard(tmp_path / "res")


def test_an_unwritable_results_directory_is_named(tmp_path: Path, make_study, tiny_config) -> None:
    make_study("a", [(tiny_config(), 70.0, {})])
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    unwritable = r"cannot write the leaderboard .*file.txt/leaderboard.parquet: .*--results-dir"
    with pytest.raises(ValueError, match=unwritable):
        collect(run_dir=tmp_path / "runs", results_dir=blocker)
    assert blocker.read_text() == "x"


def test_a_journal_named_two_ways_is_one_storage(tmp_path: Path, make_study, tiny_config, monkeypatch) -> None:
    make_study("a", [(tiny_config(), 70.0, {})])
    monkeypatch.chdir(tmp_path)
    by_name = collect(studies=["a"], run_dir=Path("runs"), results_dir=tmp_path / "res")
    by_url = collect(storages=[f"journal://{tmp_path / 'runs' / 'a' / 'journal.log'}"], run_dir=Path("runs"),
                     results_dir=tmp_path / "res")
    assert by_url.report.unchanged == 1 and len(by_url.frame) == 1
    assert by_name.frame["storage"].iloc[0] == str(tmp_path / "runs" / "a" / "journal.log")


@pytest.mark.usefixtures("one_thread")
def test_a_real_search_is_collected_as_recorded(tmp_path: Path, small_space) -> None:
    from refiner_nas.search.runner import launch
    from refiner_nas.search.settings import SearchSettings

    space = small_space()
    settings = SearchSettings(space=str(space), trials=3, epochs=1, run_dir=tmp_path / "runs", batch_size=128,
                              device="cpu", sampler="random", warmup_epochs=0.0, early_stop=False)
    study = launch(settings, show_progress=False)
    frame = collect(run_dir=tmp_path / "runs", results_dir=tmp_path / "res").frame
    assert len(frame) == len(study.get_trials()) >= 3 and set(frame["study"]) == {"small"}  # duplicates too
    for trial in study.get_trials():
        row = frame[frame["trial"] == trial.number].iloc[0]
        assert row["top1"] == trial.values[0] and row["params_m"] == pytest.approx(trial.values[1])
        assert row["dataset"] == "digits" and row["epochs"] == 1 and row["budget_key"] == settings.proxy_recipe_key()
        assert row["state"] == "complete" and row["feasible"] and row["config_hash"] == trial.user_attrs["config_hash"]
