from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from refiner_nas.search.objectives import ObjectiveError, format_objectives, parse_objectives
from refiner_nas.search.stoppers import DominanceEarlyStop

OBJECTIVES = parse_objectives("top1:max,params:min")


def completed(number: int, curve: list[float], params_m: float, *, budget_key: str = "b", status: str = "trained"):
    trial = create_trial(
        state=TrialState.COMPLETE, values=[curve[-1], params_m], params={"x": 0},
        distributions={"x": CategoricalDistribution([0])},
        user_attrs={"top1_curve": curve, "status": status, "budget_key": budget_key},
    )
    trial.number = number
    return trial


@pytest.mark.parametrize(
    ("top1", "params_m", "expected"),
    [
        (40.0, 2.0, 0),      # trial 0 had 50 at epoch 1 with 1M params: better and cheaper
        (50.0, 1.0, None),   # equal on everything: not dominated
        (60.0, 2.0, None),   # more accurate than anything at epoch 1
        (45.0, 0.5, None),   # cheaper than anything
        (50.0, 1.5, 0),      # equal accuracy, more parameters
    ],
)
def test_dominance_rule_at_an_epoch(top1: float, params_m: float, expected: int | None) -> None:
    rule = DominanceEarlyStop(OBJECTIVES, min_epoch=1)
    trials = [completed(0, [50.0, 70.0], 1.0), completed(1, [30.0, 80.0], 3.0)]
    assert rule.dominating_trial(trials, 1, top1, {"params": params_m}, "b") == expected
    # By default no trial stops before its second epoch.
    assert DominanceEarlyStop(OBJECTIVES).dominating_trial(trials, 1, top1, {"params": params_m}, "b") is None


def test_only_trained_trials_of_the_same_budget_that_reached_the_epoch_count() -> None:
    rule = DominanceEarlyStop(OBJECTIVES, min_epoch=2)
    others = [
        completed(0, [90.0, 95.0], 0.1, budget_key="other"),
        completed(1, [0.0], 0.1, status="over_budget"),
        completed(2, [90.0], 0.1),
    ]
    assert rule.dominating_trial(others, 2, 10.0, {"params": 5.0}, "b") is None
    assert rule.dominating_trial([completed(3, [90.0, 95.0], 0.1)], 1, 10.0, {"params": 5.0}, "b") is None
    assert rule.dominating_trial([completed(3, [90.0, 95.0], 0.1)], 2, 10.0, {"params": 5.0}, "b") == 3


def test_objective_syntax() -> None:
    objectives = parse_objectives("top1, macs:min ,throughput:max")
    assert [(o.name, o.direction) for o in objectives] == [
        ("top1", "maximize"), ("macs", "minimize"), ("throughput", "maximize")
    ]
    assert format_objectives(objectives) == "top1:max,macs:min,throughput:max"
    for bad, message in [("accuracy", "unknown objective 'accuracy'"), ("top1:up", "direction 'up'"),
                         ("top1,top1", "given twice"), ("", "no objective")]:
        with pytest.raises(ObjectiveError, match=message):
            parse_objectives(bad)
