"""``search list|status|delete``: studies found without writing, complete tables in a pipe, deletion asks."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from refiner_nas.cli import app
from refiner_nas.search.storages import open_storage

runner = CliRunner()


def make_study(run_dir: Path, name: str, values: list[float]) -> None:
    study = optuna.create_study(study_name=name, storage=open_storage(None, run_dir / name), direction="maximize")
    study.set_user_attr("objectives", "top1:max")
    for value in values:
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=value))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    runs = tmp_path / "a-long-folder-name-that-a-narrow-table-would-cut" / "runs"
    make_study(runs, "alpha", [50.0, 60.0])
    make_study(runs, "beta", [70.0])
    return runs


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_status_of_a_missing_study_writes_nothing_and_names_the_others(run_dir: Path) -> None:
    before = snapshot(run_dir.parent)
    result = runner.invoke(app, ["search", "status", "--study", "nosuch", "--run-dir", str(run_dir)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --study 'nosuch': no such study under {run_dir} (studies there: alpha, beta); "
        "check --study, --storage and --run-dir"
    ]
    assert snapshot(run_dir.parent) == before and not (run_dir / "nosuch").exists()
    missing_db = runner.invoke(app, ["search", "status", "--study", "x", "--storage", f"sqlite:///{run_dir}/n.db"])
    assert missing_db.exit_code == 2 and "does not exist" in missing_db.output
    assert not (run_dir / "n.db").exists()


def test_list_shows_every_study_complete_when_piped(run_dir: Path) -> None:
    result = runner.invoke(app, ["search", "list", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "alpha" in line or "beta" in line]
    assert len(lines) == 2
    cells = [[cell.strip() for cell in line.strip("│ ").split("│")][:4] for line in lines]
    assert cells == [["alpha", "3", "2 complete, 1 fail", "top1:max"], ["beta", "2", "1 complete, 1 fail", "top1:max"]]
    assert str(run_dir / "alpha" / "journal.log") in lines[0]  # not cut to the width of a terminal
    assert "…" not in result.output


def test_delete_asks_and_yes_skips_the_question(run_dir: Path) -> None:
    kept = runner.invoke(app, ["search", "delete", "--study", "alpha", "--run-dir", str(run_dir)], input="n\n")
    assert kept.exit_code == 1 and (run_dir / "alpha" / "journal.log").is_file()
    deleted = runner.invoke(app, ["search", "delete", "--study", "alpha", "--run-dir", str(run_dir)], input="y\n")
    assert deleted.exit_code == 0 and f"deleted {run_dir / 'alpha'}/" in deleted.output
    assert not (run_dir / "alpha").exists()
    missing = runner.invoke(app, ["search", "delete", "--study", "alpha", "--run-dir", str(run_dir), "--yes"])
    assert missing.exit_code == 2 and "no such study" in missing.output
    url = f"sqlite:///{run_dir}/s.db"
    optuna.create_study(study_name="gamma", storage=url)
    assert runner.invoke(app, ["search", "delete", "--study", "gamma", "--storage", url, "--yes"]).exit_code == 0
    listed = runner.invoke(app, ["search", "list", "--storage", url])
    assert listed.exit_code == 0 and "no study in" in listed.output


def test_a_journal_url_is_found_like_the_default_journal(tmp_path: Path) -> None:
    """``--storage journal:///path``: a launch's plan does not ask for the journal it is about to create,
    and a query on a journal that does not exist says so in one line without creating it."""
    from refiner_nas.search.runner import plan_launch
    from refiner_nas.search.settings import SearchSettings

    journal = tmp_path / "shared" / "study.log"
    plan = plan_launch(SearchSettings(space="tiny", storage=f"journal://{journal}", trials=2, epochs=1))
    assert plan.trials_to_run == 2 and not journal.exists()
    result = runner.invoke(app, ["search", "status", "--study", "tiny", "--storage", f"journal://{journal}"])
    assert result.exit_code == 2 and f"no such study at {journal}" in result.output and not journal.exists()
    open_storage(f"journal://{journal}", tmp_path)
    make_study(tmp_path, "tiny", [50.0])  # the default journal of run dir tmp_path/tiny: another study
    result = runner.invoke(app, ["search", "status", "--study", "tiny", "--storage", f"journal://{journal}"])
    assert result.exit_code == 2 and "no study 'tiny'" in result.output
