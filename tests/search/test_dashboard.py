"""What optuna-dashboard and Optuna's plots see: named metrics, per-epoch intermediate values, and the
history and importance pages of ``search plot``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from refiner_nas.cli import app
from refiner_nas.search.records import TrialRecord
from refiner_nas.search.runner import launch
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace
from refiner_nas.search.study import create_or_resume_study


def test_a_new_study_names_its_metrics(small_space, tmp_path: Path) -> None:
    settings = SearchSettings(space=str(small_space()), objectives="top1:max,params:min", run_dir=tmp_path)
    assert create_or_resume_study(settings, SearchSpace.load(settings.space)).metric_names == ["top1", "params"]


@pytest.mark.slow
def test_single_objective_curves_reach_the_dashboard_and_plots(small_space, tmp_path: Path) -> None:
    settings = SearchSettings(space=str(small_space()), objectives="top1:max", trials=3, epochs=2, batch_size=128,
                              run_dir=tmp_path / "runs", device="cpu", seed=1)
    study = launch(settings, show_progress=False)
    assert study.metric_names == ["top1"]
    trained = [t for t in study.trials if TrialRecord.from_trial(t).status == "trained"]
    assert trained
    for trial in trained:
        assert trial.intermediate_values == dict(enumerate(TrialRecord.from_trial(trial).top1_curve))
    out = tmp_path / "plots"
    result = CliRunner().invoke(app, ["search", "plot", "--study", "small", "--run-dir", str(tmp_path / "runs"),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'history-top1.html'} (" in result.output
    assert f"wrote {out / 'plotly.min.js'} (4." in result.output and " MB)" in result.output  # announced, with its size
    pages = sorted(out.glob("*.html"))
    assert out / "history-top1.html" in pages and all(page.stat().st_size < 50_000 for page in pages)
    assert (out / "plotly.min.js").is_file()
    again = CliRunner().invoke(app, ["search", "plot", "--study", "small", "--run-dir", str(tmp_path / "runs"),
                                     "--out", str(out)])
    assert again.exit_code == 2 and "exists; pass --force" in again.output
