"""What a study holds: trials by state, the best so far, and the Pareto front as a table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from refiner_nas.search.objectives import parse_objectives
from refiner_nas.search.records import TrialRecord

# Configuration fields worth a column in a front table (the rest are in the record).
_SHAPE_FIELDS = ("attention", "depth", "embed_dim", "num_heads", "expansion_ratio", "kernel_size", "share_span",
                 "context_broadcast")


@dataclass(frozen=True)
class StudyStatus:
    name: str
    objectives: str
    states: dict[str, int]
    statuses: dict[str, int]
    best: str
    pareto_size: int


def study_status(study: optuna.Study) -> StudyStatus:
    """Counts by Optuna state and by record status, the best result and the size of the front."""
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name.lower() for t in trials)
    statuses = Counter(_record_status(t) for t in trials)
    front = study_front(study)
    objectives = study.user_attrs.get("objectives", "")
    if front.empty:
        best = "no completed trial yet"
    else:
        top = front.iloc[0]
        best = ", ".join(f"{name} {top[name]:.4g}" for name in objective_names(study)) + f" (trial {top['trial']})"
    return StudyStatus(study.study_name, objectives, dict(states), dict(statuses), best, len(front))


def _record_status(trial: FrozenTrial) -> str:
    """A trial's record status; a waiting trial (re-queued, or enqueued) has no record yet, whose default
    would read "running"."""
    if trial.state == TrialState.WAITING:
        return "waiting"
    record = TrialRecord.from_trial(trial)
    return f"{record.status} after a pause" if record.resumed_from is not None else record.status


def requeued_waiting(study: optuna.Study) -> int:
    """Re-queued trials waiting for a worker (after a Ctrl-C or a dead worker): the next launch trains them first."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return sum(trial.user_attrs.get("retry_of") is not None for trial in waiting)


def objective_names(study: optuna.Study) -> list[str]:
    """The study's objectives by name (from its launch options), or ``value_0``... for other studies."""
    text = study.user_attrs.get("objectives")
    if text:
        return [o.name for o in parse_objectives(text)]
    return [f"value_{i}" for i in range(len(study.directions))]


def study_front(study: optuna.Study) -> pd.DataFrame:
    """The non-dominated, feasible, completed trials (Optuna's ``best_trials``, without trials that only
    repeat an earlier one), best first by the first objective, with their values, status and architecture."""
    names = objective_names(study)
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = [t for t in study.best_trials if t.user_attrs.get("status") != "duplicate"] if completed else []
    rows = []
    for trial in best:
        record = TrialRecord.from_trial(trial)
        config = record.config or {}
        rows.append({
            "trial": trial.number,
            **dict(zip(names, trial.values, strict=True)),
            "status": record.status,
            **{field: config.get(field, "") for field in _SHAPE_FIELDS},
            "config_hash": record.config_hash,
        })
    frame = pd.DataFrame(rows, columns=["trial", *names, "status", *_SHAPE_FIELDS, "config_hash"])
    if not frame.empty:
        ascending = study.directions[0] == optuna.study.StudyDirection.MINIMIZE
        frame = frame.sort_values(names[0], ascending=ascending, kind="stable").reset_index(drop=True)
    return frame
