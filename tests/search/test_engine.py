"""The search engine end to end, on the built-in digits data with very small models and budgets."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import refiner_nas.search.evaluation._evaluator as evaluate_module
from refiner_nas.refiner_space.training import NonFiniteLossError, TrainResult
from refiner_nas.results.collect import collect
from refiner_nas.results.leaderboard import result_rows
from refiner_nas.search.records import EVALUATED, TrialRecord
from refiner_nas.search.runner import launch
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.study import StudyMismatchError, load_existing_study
from refiner_nas.search.trial import INTERRUPTED


@pytest.fixture
def settings_for(tmp_path: Path, small_space):
    def make(*, max_params: str = "1M", widths=(8, 16), **changes) -> SearchSettings:
        space = small_space(max_params=max_params, widths=widths)
        fields = {"space": str(space), "trials": 3, "epochs": 1, "run_dir": tmp_path / "runs", "batch_size": 128,
                  "device": "cpu", "sampler": "random", "warmup_epochs": 0.0, **changes}
        return SearchSettings(**fields)

    return make


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def records(study: optuna.Study) -> list[TrialRecord]:
    return [TrialRecord.from_trial(t) for t in study.get_trials()]


def evaluated(study: optuna.Study) -> list[TrialRecord]:
    return [r for r in records(study) if r.status in EVALUATED]


def test_a_launch_records_every_trial_fully_and_resumes(tmp_path: Path, settings_for) -> None:
    settings = settings_for(early_stop=False)
    study = launch(settings, show_progress=False)
    trials = study.get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # --trials counts evaluated architectures: three distinct ones; repeats are duplicates on top.
    assert len(evaluated(study)) == 3 and len({r.config_hash for r in evaluated(study)}) == 3
    assert (tmp_path / "runs" / "small" / "journal.log").exists()
    for trial, record in zip(trials, records(study), strict=True):
        assert record.status in ("trained", "duplicate")
        assert record.config["embed_dim"] in (8, 16) and record.config["in_chans"] == 1
        assert record.config_hash and record.params > 0 and record.macs > 0 and record.flops >= 2 * record.macs
        assert len(record.top1_curve) == 1 and trial.values[0] == record.top1
        assert trial.values[1] == pytest.approx(record.params / 1e6)
        assert record.dataset == "digits" and record.budget["epochs"] == 1 and record.budget_key
        assert record.wall_time_s > 0 and set(record.provenance) >= {"torch", "timm", "optuna", "git_commit", "device"}
    trained = [r for r in records(study) if r.status == "trained"]
    assert all(r.train_time_s <= r.wall_time_s for r in trained)
    before = {t.number: t.values for t in trials}

    resumed = launch(settings.model_copy(update={"trials": 4}), show_progress=False)
    assert len({r.config_hash for r in evaluated(resumed)}) == 4 == len(evaluated(resumed))  # the whole space
    assert {t.number: t.values for t in resumed.get_trials() if t.number in before} == before
    count = len(resumed.get_trials())
    again = launch(settings.model_copy(update={"trials": 4}), show_progress=False)
    assert len(again.get_trials()) == count


def test_resuming_with_other_options_is_refused(tmp_path: Path, settings_for) -> None:
    settings = settings_for(trials=1)
    launch(settings, show_progress=False)
    with pytest.raises(StudyMismatchError, match=r"--objectives 'top1:max,params:min' \(now 'top1:max'\)"):
        launch(settings.model_copy(update={"objectives": "top1:max"}), show_progress=False)


def test_over_budget_configurations_are_never_trained_and_carry_constraints(
    tmp_path: Path, settings_for, monkeypatch
) -> None:
    trained_widths = []
    real_train = evaluate_module.train_model

    def spy(model, data, settings, report=None):
        trained_widths.append(model.config.embed_dim)
        return real_train(model, data, settings, report)

    monkeypatch.setattr(evaluate_module, "train_model", spy)
    # Width 8 with 1 block has 850 or 902 parameters, width 16 has 2458 or 2510: 2K admits only width 8.
    study = launch(settings_for(max_params="2K", trials=4), show_progress=False)
    statuses = set()
    for trial in study.get_trials():
        record = TrialRecord.from_trial(trial)
        statuses.add(record.status)
        over = record.params > 2000
        assert (record.status == "over_budget") == over or record.status == "duplicate"
        assert trial.constraints["max_params"] == pytest.approx(record.params / 2000 - 1)
        assert record.constraint_values == [pytest.approx(record.params / 2000 - 1)]
        # Over budget is no result: pruned in Optuna (no value 0 in the dashboard), duplicates of it too.
        assert (trial.state == TrialState.PRUNED) == over and (trial.values is None) == over
        if over:
            assert record.top1 == 0.0 and record.top1_curve == [] and record.epochs_run == 0
    assert {"over_budget", "trained", "duplicate"} <= statuses, "seed 0 repeats an over-budget architecture"
    repeats = [TrialRecord.from_trial(t) for t in study.get_trials(states=(TrialState.PRUNED,))
               if t.user_attrs["status"] == "duplicate"]
    assert repeats and all(study.trials[r.duplicate_of].user_attrs["status"] == "over_budget" for r in repeats)
    assert set(trained_widths) == {8}  # neither an over-budget architecture nor its repeats were trained
    assert len(evaluated(study)) == 4  # over-budget trials count toward --trials
    assert study.best_trials and all(TrialRecord.from_trial(t).params <= 2000 for t in study.best_trials)
    frame = study.trials_dataframe()
    assert frame.loc[frame["state"] == "COMPLETE", "user_attrs_params"].max() <= 2000
    assert frame.loc[frame["user_attrs_status"] == "over_budget", "values_top1"].isna().all()
    # The leaderboard shows them only with --all, from the record's status.
    rows = collect(run_dir=tmp_path / "runs", results_dir=tmp_path / "results").frame
    assert {"over_budget", "duplicate"} <= set(rows["status"])
    assert set(rows.loc[rows["status"] == "over_budget", "state"]) == {"pruned"}
    assert set(result_rows(rows)["status"]) == {"trained"}


def test_with_the_gp_sampler_over_budget_trials_stay_completed_with_top1_0(tmp_path: Path, settings_for) -> None:
    # GPSampler learns from completed trials only: pruned, they would teach it nothing (samplers.prunes_over_budget).
    study = launch(settings_for(max_params="2K", trials=4, sampler="gp"), show_progress=False)
    over = [t for t in study.get_trials() if t.user_attrs["params"] > 2000]
    assert over and all(t.state == TrialState.COMPLETE and t.values[0] == 0.0 for t in over)
    assert all(t.constraints["max_params"] > 0 for t in over)


def test_a_configuration_seen_before_is_reused_not_retrained(
    tmp_path: Path, settings_for, monkeypatch
) -> None:
    calls = []
    real_train = evaluate_module.train_model
    monkeypatch.setattr(evaluate_module, "train_model", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    study = launch(settings_for(trials=4), show_progress=False)
    by_hash: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for trial in study.get_trials():
        by_hash.setdefault(trial.user_attrs["config_hash"], []).append(trial)
    assert len(by_hash) == 4 and len(calls) == 4
    assert len(study.get_trials()) > 4, "the random sampler with seed 0 repeats itself in a space of 4"
    for trials in by_hash.values():
        first, *later = trials
        for trial in later:
            assert trial.user_attrs["status"] == "duplicate"
            assert trial.user_attrs["duplicate_of"] == first.number
            assert trial.values == first.values


def test_a_failing_trial_is_recorded_with_its_reason_and_the_search_goes_on(
    tmp_path: Path, settings_for, monkeypatch
) -> None:
    real_train = evaluate_module.train_model

    def fail_wide(model, data, settings, report=None):
        if model.config.embed_dim == 16:
            raise NonFiniteLossError(epoch=0, step=3, loss=float("nan"))
        return real_train(model, data, settings, report)

    monkeypatch.setattr(evaluate_module, "train_model", fail_wide)
    study = launch(settings_for(trials=2), show_progress=False)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert failed, "the random sampler with seed 0 draws width 16 in the first trials"
    first_failure = TrialRecord.from_trial(failed[0])
    assert first_failure.status == "failed"
    assert first_failure.fail_reason.startswith("NonFiniteLossError: training loss became nan at epoch 0, step 3")
    completed = study.get_trials(states=(TrialState.COMPLETE,))
    assert completed and all(TrialRecord.from_trial(t).config["embed_dim"] == 8 for t in completed)


def test_ctrl_c_requeues_the_trial_and_the_next_launch_trains_it_first(
    tmp_path: Path, settings_for, monkeypatch
) -> None:
    settings = settings_for(trials=3)
    real_train = evaluate_module.train_model
    calls = []

    def interrupt_second(model, data, train_settings, report=None):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(model, data, train_settings, report)

    monkeypatch.setattr(evaluate_module, "train_model", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        launch(settings, show_progress=False)
    study = load_existing_study(settings)
    interrupted = study.get_trials(states=(TrialState.FAIL,))[-1]
    assert interrupted.user_attrs["fail_reason"] == INTERRUPTED and interrupted.user_attrs["requeued"] is True
    assert interrupted.user_attrs["status"] == "failed"
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [interrupted.params]  # enqueued params
    kept = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert kept

    monkeypatch.setattr(evaluate_module, "train_model", real_train)
    resumed = launch(settings, show_progress=False)
    retry = resumed.get_trials()[waiting[0].number]
    assert retry.state == TrialState.COMPLETE and retry.params == interrupted.params
    assert retry.user_attrs["retry_of"] == interrupted.number and retry.user_attrs["status"] == "trained"
    assert len(evaluated(resumed)) == 3 and not resumed.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert {t.number: t.values for t in resumed.get_trials() if t.number in kept} == kept


def test_missing_dataset_fails_before_any_trial(tmp_path: Path, settings_for) -> None:
    settings = settings_for(dataset=f"imagefolder:{tmp_path / 'nowhere'}")
    with pytest.raises(ValueError, match="nowhere"):
        launch(settings, show_progress=False)
    assert not (tmp_path / "runs" / "small" / "journal.log").exists()


def test_single_objective_studies_prune_with_the_chosen_pruner(
    tmp_path: Path, settings_for, monkeypatch
) -> None:
    calls = []

    def scripted_training(model, data, settings, report=None):
        """The first three runs learn well, the later ones do not."""
        calls.append(1)
        curve = [50.0, 60.0, 70.0] if len(calls) <= 3 else [10.0, 10.0, 10.0]
        for epoch, top1 in enumerate(curve):
            report(epoch, top1)
        return TrainResult(top1_curve=tuple(curve), ema_top1_curve=(), train_loss_curve=(1.0,) * 3, epochs_run=3,
                           start_epoch=0, steps_per_epoch=1, wall_time_s=0.1, train_time_s=0.05, eval_time_s=0.05,
                           epoch_times_s=(0.03,) * 3)

    monkeypatch.setattr(evaluate_module, "train_model", scripted_training)
    settings = settings_for(objectives="top1:max", epochs=3, trials=8, pruner="median",
                            widths=(8, 16, 24, 32, 40, 48))
    study = launch(settings, show_progress=False)
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)
    pruned = [TrialRecord.from_trial(t) for t in study.get_trials(states=(TrialState.PRUNED,))]
    stopped = [r for r in pruned if r.status == "pruned"]
    assert stopped, "a run far below the median of three completed ones is pruned"
    for record in stopped:
        assert record.stop_reason == "pruned by MedianPruner at epoch 2"
        assert record.top1_curve == [10.0, 10.0]


@pytest.mark.slow
def test_workers_share_one_study(tmp_path: Path, settings_for) -> None:
    study = launch(settings_for(trials=4, workers=2, early_stop=False), show_progress=False)
    numbers = [t.number for t in study.get_trials()]
    assert len(numbers) == len(set(numbers)) >= 4
    assert len(evaluated(study)) == 4 == len({r.config_hash for r in evaluated(study)})
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


def test_latency_objective_and_budget_are_measured_before_training(settings_for, small_space, tmp_path: Path) -> None:
    space = small_space(name="timed")
    space.write_text(space.read_text() + "constraints:\n  max_latency_ms: 10000\n")
    settings = settings_for(objectives="top1:max,latency:min", trials=2, device="auto").model_copy(
        update={"space": str(space)}
    )
    study = launch(settings, show_progress=False)
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        record = TrialRecord.from_trial(trial)
        assert record.latency_ms > 0 and record.throughput > 0
        assert trial.values[1] == record.latency_ms
        assert trial.constraints["max_latency_ms"] == pytest.approx(record.latency_ms / 10000 - 1)
