"""Pause and resume (the ``promote`` stopper): its rule against brute force, simulated searches that
pause and resume trials on a table, and a real launch whose resumed trial trains as an uninterrupted one."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from refiner_nas.benchmarks.simulate import Strategy, simulate_search
from refiner_nas.results.collect import collect
from refiner_nas.results.leaderboard import result_rows
from refiner_nas.search.evaluation import make_evaluator
from refiner_nas.search.objectives import parse_objectives
from refiner_nas.search.pareto import hypervolume
from refiner_nas.search.records import TrialRecord, count_evaluated
from refiner_nas.search.runner import launch, prepare_space
from refiner_nas.search.samplers import PromotingSampler
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.stoppers import RESUME_OF, RungPromotion, promotion_order, promotion_rule
from refiner_nas.search.study import load_existing_study, study_status
from refiner_nas.search.tabular import read_table, simulated_launch_settings
from refiner_nas.search.trial import TrialRunner
from tests.search.test_stoppers import brute_ranks
from tests.search.test_tabular import SHIPPED_TABLE

OBJECTIVES = parse_objectives("top1:max,params:min")


@pytest.mark.parametrize("max_epoch, rung", [(20, 8), (5, 2), (3, 1), (2, 1), (1, None)])
def test_the_rung_sits_at_two_fifths_of_the_budget(max_epoch, rung):
    assert RungPromotion(OBJECTIVES, max_epoch=max_epoch).rung == rung


@pytest.mark.parametrize("seed", range(15))
def test_gains_follow_brute_force_ranks_and_hypervolume(seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(2, 12))
    points = np.column_stack([-rng.uniform(10, 90, count), rng.integers(1, 6, count)]).astype(float)
    numbers = list(range(count))
    completed = {n for n in numbers if rng.random() < 0.4}
    candidates = {n: list(points[n]) for n in numbers if n not in completed and rng.random() < 0.7}
    population = {n: list(points[n]) for n in numbers if n not in candidates}
    rule = RungPromotion(OBJECTIVES, max_epoch=20, min_share=0.02)
    gains = rule.gains(population, completed, candidates)

    order = list(promotion_order(points))
    ranks = brute_ranks(points)
    assert [ranks[i] for i in order] == sorted(ranks)
    best = set(order[: count // 3])
    reference = points.max(axis=0) + 0.1 * np.ptp(points, axis=0)
    box = np.prod(reference - points.min(axis=0))
    front = points[sorted(completed)].reshape(-1, 2)
    for number, point in candidates.items():
        added = hypervolume(np.vstack([front, point]), reference) - (hypervolume(front, reference) if len(front) else 0)
        expected = added / box if number in best and added > 0.02 * box else 0.0
        assert gains[number] == pytest.approx(expected, abs=1e-12)


def test_a_trial_goes_on_when_it_leads_the_rung_and_pauses_when_a_completed_one_dominates_it():
    rule = RungPromotion(OBJECTIVES, max_epoch=5)  # rung 2
    study = optuna.create_study(directions=["maximize", "minimize"])
    for number, (curve, params, status) in enumerate([([40.0, 60.0, 70.0, 75.0, 80.0], 1000, "trained"),
                                                      ([20.0, 30.0], 3000, "paused"),
                                                      ([35.0, 50.0], 500, "paused"),
                                                      ([10.0, 15.0], 5000, "paused"),
                                                      ([5.0, 8.0], 6000, "paused"),
                                                      ([3.0, 6.0], 7000, "paused")]):
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE if status == "trained" else optuna.trial.TrialState.PRUNED,
            values=[curve[-1], params / 1e6] if status == "trained" else None,
            params={"x": number}, distributions={"x": optuna.distributions.IntDistribution(0, 9)},
            user_attrs={"status": status, "top1_curve": curve, "params": params, "budget_key": "b"}))
    trials = study.get_trials()
    costs = {"params": 0.002, "macs": 0.0, "latency": 0.0, "throughput": 0.0}
    # Dominated at the rung by the completed trial (60 % at 1,000 params): paused, with a reason.
    reason = rule.stop_reason(trials, number=9, epoch=2, top1=55.0, costs=costs, budget_key="b")
    assert reason is not None and "paused at the epoch-2 rung" in reason
    assert rule.stop_reason(trials, number=9, epoch=1, top1=1.0, costs=costs, budget_key="b") is None
    # Better than everyone at the rung: goes on.
    assert rule.stop_reason(trials, number=9, epoch=2, top1=90.0, costs=costs, budget_key="b") is None
    # Of the paused ones, only the cheap one (500 params, 50 %) is in the best third and adds 8 % to the
    # completed trial's hypervolume at the rung; the others are dominated by it.
    assert [t.number for t in rule.promotions(trials, "b")] == [2]
    # A resumption that failed (Ctrl-C, a dead worker) leaves its paused trial to be resumed again.
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, system_attrs={RESUME_OF: 2},
                                              user_attrs={"status": "failed", "resumed_from": 2, "budget_key": "b",
                                                          "top1_curve": [35.0, 50.0, 60.0], "params": 500}))
    trials = study.get_trials()
    assert [t.number for t in rule.promotions(trials, "b")] == [2]
    # Once no new architecture is left, every paused trial resumes: those that pass first, then by rank.
    assert [t.number for t in rule.promotions(trials, "b", exhausted=True)] == [2, 1, 3, 4, 5]
    # Before three trials reached the rung, none goes on (the best floor(n / 3) is nobody).
    assert rule.stop_reason(trials[:1], number=9, epoch=2, top1=90.0, costs=costs, budget_key="b") is not None
    assert rule.promotions(trials, "other budget") == []


def check_paused_and_resumed(records: list[TrialRecord], curves: dict[str, np.ndarray], epochs: int, rung: int) -> None:
    """Every pause and resumption as the ``promote`` stopper promises, against the table's curves."""
    by_number = dict(enumerate(records))
    resumed = [r for r in records if r.resumed_from is not None]
    assert resumed, "some paused trial was resumed"
    for record in resumed:
        paused = by_number[record.resumed_from]
        assert paused.status == "paused" and len(paused.top1_curve) == rung and paused.epochs_run == rung
        assert record.status in ("trained", "duplicate") and record.config_hash == paused.config_hash
        if record.status == "trained":
            assert record.epochs_run == epochs - rung
            assert record.top1_curve[:rung] == paused.top1_curve
            assert any(np.allclose(record.top1_curve, run) for run in curves[record.config_hash])
    trained = Counter(r.config_hash for r in records if r.status == "trained")
    assert max(trained.values()) == 1, "no architecture is trained to the end twice"
    spent = Counter()
    for record in records:
        if record.status != "duplicate":
            spent[record.config_hash] += record.epochs_run
    assert max(spent.values()) <= epochs, "resuming never trains an epoch again"


@pytest.mark.parametrize("sampler", ["random", "ehvi"])
def test_simulated_searches_pause_and_resume_without_training_an_epoch_twice(sampler):
    trace = simulate_search(SHIPPED_TABLE, Strategy.parse(f"{sampler}+promote"), seed=1, max_trials=120)
    assert {"trained", "paused"} <= set(trace["status"])
    new = trace[trace["status"] != "duplicate"]
    assert (np.diff(trace["epochs"]) >= 0).all()
    # Pauses cost the rung's 8 epochs, trials that go on 20, resumptions the 12 after the rung.
    spent = np.diff(np.concatenate([[0], new["epochs"]]))
    assert set(spent) <= {8, 12, 20} and (spent == 12).any(), "paused trials were resumed"


def test_a_simulated_launch_records_pauses_and_resumptions(tmp_path):
    table = read_table(SHIPPED_TABLE)
    settings = simulated_launch_settings(SearchSettings(trials=24, sampler="ehvi", early_stop=True, stopper="promote",
                                                        run_dir=tmp_path / "runs"), SHIPPED_TABLE)
    study = launch(settings, show_progress=False)
    records = [TrialRecord.from_trial(t) for t in study.trials]
    check_paused_and_resumed(records, table.curves, epochs=20, rung=8)
    assert count_evaluated(study.trials) == 24 == len({r.config_hash for r in records if r.status != "duplicate"})
    assert not (tmp_path / "runs" / settings.study_name / "checkpoints").exists(), "a table keeps no checkpoints"
    statuses = study_status(study).statuses
    resumed = sum(r.status == "trained" and r.resumed_from is not None for r in records)
    assert statuses["trained after a pause"] == resumed and statuses["paused"] == sum(
        r.status == "paused" for r in records)


@pytest.mark.parametrize("trials", [6, 8, 12])
def test_a_default_launch_resumes_what_the_rule_promotes_before_it_ends(tmp_path, trials):
    # The default on the table's space (EHVI) pauses: nothing goes on before the six-architecture design
    # reached the rung, so the last design trial leaves promotable trials paused. The launch resumes them
    # past --trials (they are no new architectures) and ends with none that the rule would resume.
    settings = simulated_launch_settings(SearchSettings(trials=trials, run_dir=tmp_path / "runs"), SHIPPED_TABLE)
    space = prepare_space(settings)
    rule = promotion_rule(settings, space)
    assert rule is not None and rule.min_population == 6
    study = launch(settings, show_progress=False)
    records = [TrialRecord.from_trial(t) for t in study.trials]
    assert count_evaluated(study.trials) == trials
    assert any(r.status == "trained" and r.resumed_from is not None for r in records)
    assert rule.promotions(study.get_trials(deepcopy=False), settings.proxy_recipe_key()) == []
    check_paused_and_resumed(records, read_table(SHIPPED_TABLE).curves, epochs=20, rung=8)
    # The leaderboard shows each architecture once: a paused trial that was resumed and trained is shown
    # through the trial that resumed it (with --all, both).
    everything = collect(studies=[settings.study_name], run_dir=tmp_path / "runs", results_dir=tmp_path / "res").frame
    shown = result_rows(everything)
    superseded = {r.resumed_from for r in records if r.status == "trained" and r.resumed_from is not None}
    assert superseded and set(shown["trial"]) == {t.number for t in study.trials} - superseded
    assert len(shown) == trials == shown["config_hash"].nunique()


@pytest.mark.slow
def test_two_worker_processes_pause_and_resume_without_training_an_epoch_twice(tmp_path):
    table = read_table(SHIPPED_TABLE)
    settings = simulated_launch_settings(SearchSettings(trials=24, workers=0, sampler="ehvi", early_stop=True,
                                                        stopper="promote", run_dir=tmp_path / "runs"), SHIPPED_TABLE)
    launch(settings, show_progress=False)  # creates the study only
    # Simulated trials take milliseconds: the two workers start their loops together, once both are loaded.
    go = tmp_path / "go"
    script = ("import os, pathlib, sys, time\n"
              "from refiner_nas.search.runner import run_worker, worker_settings\n"
              "settings = worker_settings(study=sys.argv[1], storage=None, run_dir=pathlib.Path(sys.argv[2]))\n"
              "go = pathlib.Path(sys.argv[3])\n"
              "go.with_name(f'ready-{os.getpid()}').touch()\n"
              "while not go.exists(): time.sleep(0.005)\n"
              "run_worker(settings)\n")
    workers = [subprocess.Popen([sys.executable, "-c", script, settings.study_name, str(tmp_path / "runs"), str(go)])
               for _ in range(2)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0]
    study = load_existing_study(settings)
    records = [TrialRecord.from_trial(t) for t in study.trials]
    assert len({r.worker for r in records}) >= 2, "both workers ran trials"
    check_paused_and_resumed(records, table.curves, epochs=20, rung=8)
    assert count_evaluated(study.trials) >= 24
    assert all(r.status in ("trained", "paused", "duplicate") for r in records)


class PauseTrialZero:
    """A stopper that pauses trial 0 after its first epoch and nothing else."""

    pauses = True

    def stop_reason(self, trials, *, number, epoch, top1, costs, budget_key):
        return "paused for the test" if number == 0 and epoch == 1 else None


class Promote:
    """A promotion rule that resumes the given paused trial (once)."""

    def __init__(self, trial):
        self.trial = trial

    def promotions(self, trials, budget_key, *, exhausted=False):
        resuming = [t for t in trials if t.system_attrs.get(RESUME_OF) is not None and t.state != TrialState.FAIL]
        return [] if resuming else [self.trial]


def interrupt_after_one_epoch(train):
    """The training step ``train``, interrupted (as by Ctrl-C) after its first epoch."""

    def interrupted(config, data, report, state):
        def report_then_stop(epoch, top1, elapsed_s):
            report(epoch, top1, elapsed_s)
            raise KeyboardInterrupt

        return train(config, data, report_then_stop, state)

    return interrupted


@pytest.mark.slow
def test_a_resumed_trial_trains_exactly_as_an_uninterrupted_one(tmp_path):
    # Real training on digits: trial 0 pauses after epoch 1 of 3 and keeps its checkpoint; trial 1 resumes
    # it and ends with the curve of the same architecture trained without a pause, in a study of its own.
    settings = SearchSettings(space="tiny", epochs=3, batch_size=64, warmup_epochs=0, early_stop=True,
                              stopper="promote", run_dir=tmp_path / "runs", study="paused")
    space = prepare_space(settings)
    runner = TrialRunner(make_evaluator(settings, space))
    runner.early_stop = PauseTrialZero()
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(runner, n_trials=1)
    paused_trial = study.trials[0]
    paused = TrialRecord.from_trial(paused_trial)
    assert paused.status == "paused" and paused.epochs_run == 1 and len(paused.top1_curve) == 1
    checkpoint = Path(paused.checkpoint_dir)
    assert checkpoint == settings.study_dir / "checkpoints" / "trial-0"
    assert (checkpoint / "last.pt").is_file()
    assert count_evaluated(study.trials) == 1

    study.sampler = PromotingSampler(optuna.samplers.RandomSampler(seed=1), Promote(paused_trial),
                                     settings.proxy_recipe_key())
    # The first resumption is cut short after one more epoch: the paused state stays as it was.
    train = runner.evaluator.train
    runner.evaluator.train = interrupt_after_one_epoch(train)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(runner, n_trials=1)
    runner.evaluator.train = train
    cut = TrialRecord.from_trial(study.trials[1])
    assert cut.status == "failed" and cut.resumed_from == 0 and cut.requeued and len(cut.top1_curve) == 2
    assert not (settings.study_dir / "checkpoints" / "trial-1").exists() and (checkpoint / "last.pt").is_file()
    # Its re-queued retry finds the paused trial (a duplicate, nothing trained); the next trial resumes it.
    study.optimize(runner, n_trials=2)
    retry = TrialRecord.from_trial(study.trials[2])
    assert retry.status == "duplicate" and retry.duplicate_of == 0 and retry.retry_of == 1
    resumed = TrialRecord.from_trial(study.trials[3])
    assert resumed.resumed_from == 0 and resumed.status == "trained" and resumed.config_hash == paused.config_hash
    assert resumed.epochs_run == 2 and resumed.top1_curve[:1] == paused.top1_curve
    assert not checkpoint.exists(), "the checkpoint goes once the architecture is trained to the end"
    assert not any((settings.study_dir / "checkpoints").iterdir()), "and so does the resumed trial's copy"
    assert count_evaluated(study.trials) == 1, "one architecture, evaluated once"

    alone = optuna.create_study(directions=["maximize", "minimize"])
    alone.enqueue_trial(paused_trial.params)
    plain = TrialRunner(make_evaluator(settings.model_copy(update={"early_stop": False, "study": "plain"}), space))
    alone.optimize(plain, n_trials=1)
    reference = TrialRecord.from_trial(alone.trials[0])
    assert reference.config_hash == paused.config_hash and reference.epochs_run == 3
    assert resumed.top1_curve == reference.top1_curve, "bit-exact: the resumed run followed the same path"
