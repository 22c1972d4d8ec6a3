"""The live progress display: work counted in epochs, an ETA from measured epochs, the summary's front."""

from __future__ import annotations

import io
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from rich.console import Console

from refiner_nas.search.records import TrialRecord
from refiner_nas.search.runner import (
    RunningTrial,
    SearchProgress,
    describe_best,
    estimate_work,
    seconds_per_epoch,
)
from refiner_nas.search.study import study_status


def test_work_and_eta_count_epochs_and_move_inside_an_epoch() -> None:
    running = [RunningTrial(number=1, epochs_done=2, epoch_elapsed_s=3.0)]
    work = estimate_work(total_trials=4, finished=1, running=running, epochs=5, epoch_s=10.0)
    assert work.done == pytest.approx(7.3) and work.total == 20
    assert work.eta_s == pytest.approx((20 - 7.3) * 10.0)
    later = estimate_work(total_trials=4, finished=1, running=[RunningTrial(1, 2, 6.0)], epochs=5, epoch_s=10.0)
    assert later.eta_s == pytest.approx(work.eta_s - 3.0)  # the clock runs down inside the epoch
    two = estimate_work(total_trials=4, finished=0, running=[RunningTrial(0, 0, 0.0), RunningTrial(1, 0, 0.0)],
                        epochs=5, epoch_s=10.0)
    assert two.eta_s == pytest.approx(20 * 10.0 / 2)  # two trials in flight: twice the pace
    assert estimate_work(total_trials=4, finished=0, running=running, epochs=5, epoch_s=None).eta_s is None


def test_instant_trials_do_not_set_the_pace() -> None:
    trained = TrialRecord(status="trained", epochs_run=4, train_time_s=8.0)
    duplicate = TrialRecord(status="duplicate", epochs_run=4, train_time_s=None)
    over = TrialRecord(status="over_budget", epochs_run=0, top1=0.0)
    def fields(*records: TrialRecord) -> list[dict]:
        return [record.model_dump(mode="json") for record in records]

    assert seconds_per_epoch(fields(duplicate, over)) is None
    assert seconds_per_epoch(fields(trained, duplicate, over)) == pytest.approx(2.0)


def two_objective_study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for number, (top1, params, status) in enumerate(
        [(80.0, 2.0, "trained"), (70.0, 1.0, "trained"), (80.0, 2.0, "duplicate"), (60.0, 3.0, "trained")]
    ):
        attrs = TrialRecord(status=status, config_hash=f"h{number}", top1=top1, epochs_run=5,
                            train_time_s=None if status == "duplicate" else 5.0).model_dump(mode="json")
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[top1, params], user_attrs=attrs))
    running = TrialRecord(status="running", top1_curve=[40.0, 50.0], epochs_run=2, train_time_s=2.0)
    study.add_trial(create_trial(state=TrialState.RUNNING, user_attrs=running.model_dump(mode="json")))
    return study


def test_live_front_is_the_summary_front() -> None:
    study = two_objective_study()
    assert len(study.best_trials) == 3  # Optuna counts the duplicate
    assert describe_best(study) == f"Pareto front: {study_status(study).pareto_size} trials" == "Pareto front: 2 trials"


def test_display_shows_trials_epochs_and_an_eta_from_the_first_measured_epochs() -> None:
    study = two_objective_study()
    out = io.StringIO()
    with SearchProgress(study, 6, epochs=5, console=Console(file=out, width=200, force_terminal=True), interval_s=60):
        pass
    text = out.getvalue()
    # The duplicate is no evaluated architecture: 3 of 6 (what --trials counts).
    assert "trials 3/6" in text and "trial 4 epoch 3/5" in text and "Pareto front: 2 trials" in text
    # 17 s of training over 17 epochs: 1 s per epoch; 30 - 17 epochs left, one trial in flight.
    assert "ETA 00:13" in text


def test_counting_costs_prints_no_torch_jit_warning() -> None:
    code = "import refiner_nas.refiner_space.costs._count"
    result = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, check=True)
    assert "torch.jit" not in result.stderr


def test_the_front_shown_follows_each_completed_trial() -> None:
    study = two_objective_study()
    display = SearchProgress(study, 6, epochs=5, console=Console(file=io.StringIO()))
    display.refresh()
    assert "Pareto front: 2 trials" in display.progress.tasks[0].fields["status"]
    attrs = TrialRecord(status="trained", config_hash="h9", top1=90.0, epochs_run=5, train_time_s=5.0)
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[90.0, 0.5],
                                 user_attrs=attrs.model_dump(mode="json")))
    display.refresh()
    assert "Pareto front: 1 trials" in display.progress.tasks[0].fields["status"]


def test_out_of_a_terminal_each_trial_finished_during_the_display_is_one_line() -> None:
    study = two_objective_study()  # trials 0-3 finished before: not printed again
    study.set_user_attr("objectives", "top1:max,params:min")
    out = io.StringIO()
    with SearchProgress(study, 6, epochs=5, console=Console(file=out, width=80), interval_s=60) as display:
        done = TrialRecord(status="trained", config_hash="h9", top1=90.0, epochs_run=5, train_time_s=5.0)
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[90.0, 0.5],
                                     user_attrs=done.model_dump(mode="json")))
        failed = TrialRecord(status="failed", fail_reason="interrupted", epochs_run=2)
        study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=failed.model_dump(mode="json")))
        display.refresh()
        display.refresh()  # nothing new: nothing printed
    assert out.getvalue().splitlines() == [
        "trial 5 complete (trained): top1 90, params 0.5; 5 epochs in 00:00",
        "trial 6 fail (failed: interrupted): no values; 2 epochs in 00:00",
    ]
