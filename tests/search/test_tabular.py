"""The benchmark table: schema, the shipped file, the simulated backend and the strategy comparison."""

from __future__ import annotations

import json
import threading

import numpy as np
import optuna
import pandas as pd
import pytest

from refiner_nas.benchmarks.search_strategies import epochs_to_reach, run_comparison, summarise
from refiner_nas.benchmarks.simulate import Strategy, simulate_search
from refiner_nas.search.pareto import hypervolume
from refiner_nas.search.records import TrialRecord
from refiner_nas.search.runner import launch
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import Budget, SearchSpace, enumerate_space
from refiner_nas.search.tabular import (
    SHIPPED_TABLE,
    HypervolumeTracker,
    TableSchemaError,
    read_table,
    simulated_launch_settings,
    write_table,
)


def test_table_round_trips_and_rejects_broken_files(random_table, tmp_path):
    table = read_table(random_table())
    assert len(table.architectures) == 48 and table.epochs == 5 and set(table.rows["seed"]) == {0, 1}
    assert table.curves[table.architectures.index[0]].shape == (2, 5)
    broken = {
        "missing": table.rows.drop(columns="macs"),
        "short curve": table.rows.assign(top1_curve=table.rows["top1_curve"].map(lambda c: c[:-1])),
        "twice": pd.concat([table.rows, table.rows.iloc[:1]]),
        "top1": table.rows.assign(top1=table.rows["top1"] + 1),
    }
    for name, rows in broken.items():
        with pytest.raises(TableSchemaError):
            write_table(rows, table.provenance, tmp_path / f"{name}.parquet")
    with pytest.raises(TableSchemaError, match="lacks"):
        write_table(table.rows, {"epochs": 5}, tmp_path / "no_provenance.parquet")
    table.rows.to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(TableSchemaError, match="not a benchmark table"):
        read_table(tmp_path / "plain.parquet")


def test_shipped_table_holds_every_architecture_of_its_space_with_two_seeds():
    table = read_table(SHIPPED_TABLE)
    space = SearchSpace.load(table.provenance["space"])
    assert set(table.architectures.index) == {config.config_hash() for _, config in enumerate_space(space)}
    assert (table.architectures["seeds"] >= 2).all()
    assert table.provenance["epochs"] == 20 and table.provenance["build_seconds"] > 0
    assert (table.rows["top1"] > 10).all()  # every model learned something (10 classes)


def test_hypervolume_tracker_reaches_one_with_the_true_front(random_table):
    table = read_table(random_table())
    tracker = HypervolumeTracker(table)
    points = -table.architectures["top1"].to_numpy()
    params = table.architectures["params"].to_numpy()
    order = np.argsort(points)  # best top-1 first
    for arch in table.architectures.index[order[:3]]:
        tracker.add(arch)
    chosen = np.column_stack([points, params])[order[:3]]
    reference = np.array([points.max(), params.max()])
    full = hypervolume(np.column_stack([points, params]), reference)
    assert tracker.ratios["params"] == pytest.approx(hypervolume(chosen, reference) / full)
    for arch in table.architectures.index:
        tracker.add(arch)
    assert tracker.ratios == {"params": pytest.approx(1.0), "macs": pytest.approx(1.0)}


def test_simulated_search_reads_curves_and_spends_epochs_as_recorded(random_table):
    path = random_table()
    table = read_table(path)
    trace = simulate_search(path, Strategy.parse("random+mo_asha"), seed=3, max_trials=40)
    again = simulate_search(path, Strategy.parse("random+mo_asha"), seed=3, max_trials=40)
    pd.testing.assert_frame_equal(trace, again)
    assert (np.diff(trace["epochs"]) >= 0).all() and trace["hv_params"].between(0, 1).all()
    assert {"trained", "early_stopped"} <= set(trace["status"])
    plain = simulate_search(path, Strategy.parse("random+none"), seed=3, max_trials=40)
    trained = (plain["status"] == "trained").sum()
    assert plain["epochs"].iloc[-1] == trained * table.epochs


def test_a_budget_on_the_tables_space_keeps_searches_and_the_true_front_within_it(random_table):
    path = random_table()
    architectures = read_table(path).architectures
    limit = int(architectures["params"].median())
    budget = Budget(max_params=limit)
    within = architectures[architectures["params"] <= limit]
    tracker = HypervolumeTracker(read_table(path), budget=budget)
    for arch in within.index:
        tracker.add(arch)
    assert tracker.ratios == {"params": pytest.approx(1.0), "macs": pytest.approx(1.0)}
    with pytest.raises(KeyError):
        tracker.add(architectures.index[architectures["params"] > limit][0])

    trace = simulate_search(path, Strategy.parse("random+none"), seed=0, budget=budget)
    assert {"trained", "over_budget"} <= set(trace["status"])
    assert trace["hv_params"].iloc[-1] == pytest.approx(1.0), "random search finds the whole feasible front"
    traces = run_comparison(path, ["random+none"], seeds=range(1), budget=budget)
    pd.testing.assert_series_equal(traces["status"], trace["status"], check_names=False)


def test_tpe_steers_away_from_over_budget_architectures_told_to_optuna_as_pruned():
    # Half the shipped table's architectures are over its median parameter count. Pruned over-budget
    # trials carry their constraints, which TPE ranks below every feasible trial: after its 10 random
    # start-up trials it proposes far fewer of them than random search (an ignored trial would not teach it).
    budget = Budget(max_params=int(read_table(SHIPPED_TABLE).architectures["params"].median()))

    def over_budget_share(strategy: str) -> float:
        traces = [simulate_search(SHIPPED_TABLE, Strategy.parse(strategy), seed=seed, budget=budget,
                                  max_trials=60)
                  for seed in range(3)]
        new = pd.concat(traces).query("trial >= 10 and status != 'duplicate'")
        return float((new["status"] == "over_budget").mean())

    tpe, random = over_budget_share("tpe+none"), over_budget_share("random+none")
    assert tpe < 0.4 and tpe < random - 0.1, (tpe, random)


def test_launch_with_a_table_records_the_tables_curves(random_table, tmp_path):
    path = random_table()
    table = read_table(path)
    settings = simulated_launch_settings(
        SearchSettings(trials=6, sampler="random", stopper="mo_asha", run_dir=tmp_path / "runs"), path)
    study = launch(settings, show_progress=False)
    records = [TrialRecord.from_trial(t) for t in study.trials]
    assert len(records) == 6
    for record in records:
        runs = table.curves[record.config_hash]
        assert any(np.allclose(record.top1_curve, run[: record.epochs_run]) for run in runs)
        assert record.params == table.architectures.loc[record.config_hash, "params"]


def test_comparison_summary_on_a_few_repetitions(random_table):
    path = random_table()
    traces = run_comparison(path, ["random+none", "random+mo_asha", "tpe+dominance"], seeds=range(2))
    reach = epochs_to_reach(traces)
    summary = summarise(reach)
    assert set(summary["strategy"]) == {"random+none", "random+mo_asha", "tpe+dominance"}
    assert set(summary["fraction"]) == {0.9, 0.95, 0.99}
    baseline = summary[summary["strategy"] == "random+none"]
    assert (baseline["vs_random"] == 1.0).all()
    first = reach[(reach["strategy"] == "random+none") & (reach["seed"] == 0) & (reach["fraction"] == 0.9)]
    run = traces[(traces["strategy"] == "random+none") & (traces["seed"] == 0)]
    assert first["epochs"].item() == run.loc[run["hv"] >= 0.9, "epochs"].iloc[0]


def test_strategy_names_are_checked():
    assert Strategy.parse("nsga2+dominance") == Strategy("nsga2", "dominance")
    with pytest.raises(ValueError, match="SAMPLER\\+STOPPER"):
        Strategy.parse("bogus+none")


def test_zero_cost_scores_are_finite_and_leave_weights_alone():
    import torch

    from refiner_nas.refiner_space import build_model
    from refiner_nas.search.samplers._zero_cost import PROXIES, score, synflow

    config = json.loads(json.dumps({"img_size": 16, "in_chans": 1, "num_classes": 10, "patch_size": 4, "depth": 1,
                                    "embed_dim": 16, "num_heads": 2, "attention": "refiner"}))
    images, labels = torch.randn(8, 1, 16, 16), torch.arange(8) % 10
    from refiner_nas.refiner_space import ModelConfig

    scores = score(ModelConfig.from_dict(config), images, labels)
    assert set(scores) == set(PROXIES) and all(np.isfinite(v) for v in scores.values())
    model = build_model(config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    synflow(model, images, labels)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bench_search_command_writes_summary_and_plot(random_table, tmp_path):
    from typer.testing import CliRunner

    from refiner_nas.cli import app

    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", "search", "--table", str(random_table()), "--strategies",
                                      "random+none,tpe+mo_asha", "--seeds", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["strategy"]) == {"random+none", "tpe+mo_asha"} and len(summary) == 6
    assert (out / "hypervolume.png").stat().st_size > 0 and "random+none" in result.output


@pytest.mark.slow
def test_build_resumes_and_writes_a_valid_table(small_space, tmp_path):
    from refiner_nas.benchmarks.table_build import build_table, partial_path

    settings = SearchSettings(space=str(small_space()), epochs=1, warmup_epochs=0.0, batch_size=64, device="cpu")
    out = tmp_path / "table.parquet"
    assert build_table(settings, seeds=[0], out=out, limit=1) is None
    assert len(partial_path(out).read_text().splitlines()) == 1
    table = build_table(settings, seeds=[0], out=out)
    assert table is not None and not partial_path(out).exists()
    again = read_table(out)
    assert len(again.architectures) == 4 and again.provenance["epochs"] == 1
    assert again.rows["top1_curve"].map(len).eq(1).all() and (again.rows["params"] > 0).all()


def two_workers_one_architecture(path, tmp_path):
    """Two trial runners (as two workers would hold) and two asked trials of one architecture of the table
    at ``path``, numbered 0 and 1."""
    from refiner_nas.search.evaluation import table_evaluator
    from refiner_nas.search.tabular import cached_table, table_space
    from refiner_nas.search.trial import TrialRunner

    settings = simulated_launch_settings(SearchSettings(trials=2, early_stop=False, run_dir=tmp_path / "runs"), path)
    space = table_space(cached_table(str(path)))
    first, second = TrialRunner(table_evaluator(settings, space)), TrialRunner(table_evaluator(settings, space))
    study = optuna.create_study(directions=[o.direction for o in settings.objective_list])
    params = json.loads(cached_table(str(path)).rows["space_params"].iloc[0])
    study.enqueue_trial(params)
    study.enqueue_trial(params)
    return first, second, study.ask(), study.ask()


def test_an_earlier_trial_yields_to_a_later_one_already_training(random_table, tmp_path) -> None:
    """Two workers, one architecture: trial 1 passed its duplicate check and trains when trial 0 (drawn
    first, slower to get there) looks. Trial 0 leaves it to trial 1 instead of training it again."""
    from refiner_nas.search.trial import DuplicateOfRunningTrial

    first, second, earlier, later = two_workers_one_architecture(random_table(), tmp_path)
    trainings, outcome = [], {}
    evaluate = second.evaluator.evaluate

    def evaluate_while_the_earlier_trial_looks(*args, **kwargs):
        trainings.append(later.number)
        with pytest.raises(DuplicateOfRunningTrial):
            first(earlier)
        outcome.update(first.last.fields)
        return evaluate(*args, **kwargs)

    second.evaluator.evaluate = evaluate_while_the_earlier_trial_looks
    first.evaluator.evaluate = lambda *args, **kwargs: trainings.append(earlier.number)
    second(later)
    assert trainings == [later.number]
    assert outcome["status"] == "duplicate" and outcome["duplicate_of"] == later.number


def test_of_two_trials_past_their_first_look_at_once_only_one_trains(random_table, tmp_path) -> None:
    """Trial 1 looks first and sees nobody; trial 0 then looks, sees trial 1 not yet training, marks itself
    and starts training; trial 1 marks itself, looks again, sees trial 0 training and yields."""
    from refiner_nas.search.trial import DuplicateOfRunningTrial

    first, second, earlier, later = two_workers_one_architecture(random_table(), tmp_path)
    looked, training, finished = threading.Event(), threading.Event(), threading.Event()
    trainings, errors = [], []
    same_architecture = second._same_architecture

    def first_look_then_wait(*args):
        found = same_architecture(*args)
        if not looked.is_set():
            looked.set()
            assert training.wait(10)
        return found

    def train_until_the_other_has_decided(*args, **kwargs):
        trainings.append(earlier.number)
        training.set()
        assert finished.wait(10)
        return [50.0, 1.0]

    def run_later() -> None:
        try:
            second(later)
        except DuplicateOfRunningTrial as error:
            errors.append(error)
        finally:
            finished.set()

    second._same_architecture = first_look_then_wait
    second.evaluator.evaluate = lambda *args, **kwargs: trainings.append(later.number)
    first.evaluator.evaluate = train_until_the_other_has_decided
    thread = threading.Thread(target=run_later)
    thread.start()
    assert looked.wait(10)
    first(earlier)
    thread.join(10)
    assert trainings == [earlier.number] and len(errors) == 1
    assert second.last.fields["status"] == "duplicate" and second.last.fields["duplicate_of"] == earlier.number
