"""Early stopping for multi-objective studies, where Optuna's pruners do not apply.

The rule: after epoch ``e`` (counting from 1, from ``min_epoch`` = 2 on), a running trial stops when some
completed, trained trial of the same budget *dominates* it at that epoch: that trial's top-1 after
epoch ``e`` was at least as high, and each of its cost objectives (params, MACs, latency, throughput,
whatever the study optimises besides top-1) is at least as good, with at least one of all these
strictly better. Such a trial can no longer reach the Pareto front unless it improves faster than the
dominating trial did, which a proxy budget of a few epochs rarely allows. Stopped trials are recorded
as pruned (status ``early_stopped``) with the dominating trial's number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from refiner_nas.search.objectives import Objective


@dataclass(frozen=True)
class DominanceEarlyStop:
    """The rule above, for the study's cost objectives (the ones known before training)."""

    objectives: Sequence[Objective]
    min_epoch: int = 2

    def dominating_trial(
        self, completed: Sequence[FrozenTrial], epoch: int, top1: float, costs: dict[str, float], budget_key: str
    ) -> int | None:
        """Number of a completed trial that dominates (``top1`` after ``epoch``, ``costs``), or None."""
        if epoch < self.min_epoch:
            return None
        cost_objectives = [o for o in self.objectives if o.before_training]
        for trial in completed:
            attrs = trial.user_attrs  # record fields, validated when written; not again for every epoch
            curve = attrs.get("top1_curve") or ()
            if trial.state != TrialState.COMPLETE or attrs.get("status") != "trained" or len(curve) < epoch:
                continue
            if attrs.get("budget_key") != budget_key:
                continue
            their_top1 = curve[epoch - 1]
            their_costs = {o.name: trial.values[self._index(o)] for o in cost_objectives}
            no_worse = their_top1 >= top1 and all(
                _at_least_as_good(their_costs[o.name], costs[o.name], o) for o in cost_objectives
            )
            strictly_better = their_top1 > top1 or any(
                their_costs[o.name] != costs[o.name] for o in cost_objectives
            )
            if no_worse and strictly_better:
                return trial.number
        return None

    def _index(self, objective: Objective) -> int:
        return list(self.objectives).index(objective)


def _at_least_as_good(theirs: float, ours: float, objective: Objective) -> bool:
    return theirs <= ours if objective.direction == "minimize" else theirs >= ours
