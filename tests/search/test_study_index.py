"""The incremental study index against full scans of the study, over random histories."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.trial import TrialState

from refiner_nas.search.records import EVALUATED
from refiner_nas.search.study import StudyIndex

# "resumed": trained by a trial that went on from a paused one, whose architecture is already counted.
STATUSES = ["trained", "over_budget", "duplicate", "pruned", "early_stopped", "paused", "resumed", "failed"]
END_STATE = {"trained": TrialState.COMPLETE, "over_budget": TrialState.COMPLETE, "duplicate": TrialState.COMPLETE,
             "pruned": TrialState.PRUNED, "early_stopped": TrialState.PRUNED, "paused": TrialState.PRUNED,
             "resumed": TrialState.COMPLETE, "failed": TrialState.FAIL}


def brute_force(study: optuna.Study, config_hash: str, budget_key: str) -> tuple[int, int, int, list[int]]:
    trials = study.get_trials(deepcopy=False)
    return (sum(t.user_attrs.get("status") in EVALUATED and "resumed_from" not in t.user_attrs
                and t.state.is_finished() for t in trials),
            sum(t.state == TrialState.RUNNING for t in trials), sum(t.state == TrialState.WAITING for t in trials),
            [t.number for t in trials if t.user_attrs.get("config_hash") == config_hash
             and t.user_attrs.get("budget_key") == budget_key])


@pytest.mark.parametrize("seed", range(5))
def test_the_index_answers_as_full_scans_do(seed: int) -> None:
    rng = random.Random(seed)
    study = optuna.create_study(directions=["maximize", "minimize"])
    index = StudyIndex()
    running: list[optuna.Trial] = []
    for _ in range(300):
        action = rng.random()
        if action < 0.1:
            study.enqueue_trial({})
        elif action < 0.45 or not running:
            trial = study.ask()
            trial.set_user_attr("config_hash", f"arch{rng.randrange(12)}")
            trial.set_user_attr("budget_key", f"budget{rng.randrange(2)}")
            running.append(trial)
        else:
            trial = running.pop(rng.randrange(len(running)))
            status = rng.choice(STATUSES)
            if status == "resumed":
                trial.set_user_attr("resumed_from", 0)
            trial.set_user_attr("status", "trained" if status == "resumed" else status)
            state = END_STATE[status]
            study.tell(trial, [1.0, 2.0] if state == TrialState.COMPLETE else None, state=state)
        if rng.random() < 0.3:
            index.refresh(study)
            config_hash, budget_key = f"arch{rng.randrange(12)}", f"budget{rng.randrange(2)}"
            evaluated, running_count, waiting, same = brute_force(study, config_hash, budget_key)
            assert index.evaluated == evaluated
            assert index.count(TrialState.RUNNING) == running_count == len(index.running())
            assert index.count(TrialState.WAITING) == waiting
            assert [t.number for t in index.same_architecture(config_hash, budget_key)] == same


def test_a_refresh_looks_only_at_new_and_unfinished_trials() -> None:
    study = optuna.create_study(directions=["maximize"])
    for _ in range(50):
        trial = study.ask()
        trial.set_user_attr("status", "trained")
        study.tell(trial, 1.0)
    index = StudyIndex().refresh(study)
    looked_at: list[int] = []

    class Watched(dict):
        def get(self, key, default=None):
            looked_at.append(key)
            return super().get(key, default)

    for trial in study.get_trials(deepcopy=False):
        trial.user_attrs = Watched(trial.user_attrs)
    study.ask()
    index.refresh(study)
    assert looked_at == [] and index.evaluated == 50 and len(index.running()) == 1


def test_another_study_starts_a_new_index() -> None:
    first, second = optuna.create_study(), optuna.create_study()
    trial = first.ask()
    trial.set_user_attr("status", "trained")
    first.tell(trial, 1.0)
    index = StudyIndex()
    assert index.refresh(first).evaluated == 1
    assert index.refresh(second).evaluated == 0
