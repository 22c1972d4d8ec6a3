"""Pre-screening (search.samplers.PrescreenSampler): which candidate a trial trains, what it costs, and the
comparison."""

from __future__ import annotations

import optuna
import pytest

from refiner_nas.benchmarks.search_strategies import epochs_to_reach, run_comparison, summarise
from refiner_nas.benchmarks.simulate import Strategy
from refiner_nas.search.records import TrialRecord
from refiner_nas.search.runner import launch
from refiner_nas.search.samplers import GP_ACQUISITION_SEARCH
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.tabular import read_table, simulated_launch_settings


def screened_launch(path, tmp_path, *, trials: int, prescreen: int, proxy: str) -> list[TrialRecord]:
    settings = simulated_launch_settings(
        SearchSettings(trials=trials, sampler="random", prescreen=prescreen, proxy=proxy, run_dir=tmp_path / "runs"),
        path)
    return [TrialRecord.from_trial(t) for t in launch(settings, show_progress=False).trials]


def test_prescreen_trains_the_best_scoring_unevaluated_architecture_and_records_its_cost(random_table, tmp_path):
    path = random_table()
    params = read_table(path).architectures["params"]
    # 600 random proposals of 48 architectures miss one with probability 48 * (47/48)**600, about 1e-4:
    # each trial then sees the whole space, and brute force says which architecture it must train.
    records = screened_launch(path, tmp_path, trials=5, prescreen=600, proxy="params")
    assert [r.config_hash for r in records] == list(params.sort_values(ascending=False).index[:5])
    assert all(r.status == "trained" for r in records)
    assert [r.prescreen_score for r in records] == [float(params[r.config_hash]) for r in records]
    assert all(r.prescreen_s is not None and r.prescreen_s > 0 for r in records)


def test_prescreen_scores_with_a_zero_cost_proxy(random_table, tmp_path):
    records = screened_launch(random_table(), tmp_path, trials=2, prescreen=3, proxy="synflow")
    assert len({r.config_hash for r in records}) == 2
    assert all(r.prescreen_score is not None and r.prescreen_score > 0 for r in records)


def test_prescreen_strategies_and_gp_run_in_the_comparison(random_table):
    traces = run_comparison(random_table(), ["random+none", "gp+none", "tpe+none+params:4"], seeds=range(2))
    summary = summarise(epochs_to_reach(traces))
    assert set(summary["strategy"]) == {"random+none", "gp+none", "tpe+none+params:4"}
    screened = traces[traces["strategy"] == "tpe+none+params:4"]
    assert (screened.groupby("seed")["prescreen_s"].max() > 0).all()
    assert (traces.loc[traces["strategy"] != "tpe+none+params:4", "prescreen_s"] == 0).all()


def test_strategy_names_with_prescreening_round_trip_and_are_checked():
    assert Strategy.parse("tpe+none+naswot:8") == Strategy("tpe", "none", 8, "naswot")
    assert Strategy.parse("tpe+none+naswot:8").name == "tpe+none+naswot:8"
    for bad in ("tpe+none+naswot:0", "tpe+none+flops:8", "tpe+none+naswot"):
        with pytest.raises(ValueError, match=r"SAMPLER\+STOPPER\[\+PROXY:K\]"):
            Strategy.parse(bad)


def test_gp_acquisition_search_settings_exist_in_this_optuna():
    # They are private: an Optuna that renames them would silently bring back the slow search.
    sampler = optuna.samplers.GPSampler(seed=0)
    assert all(name in vars(sampler) for name in GP_ACQUISITION_SEARCH)
