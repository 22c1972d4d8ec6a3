"""Ray's OptunaSearch, extended to write each finished Ray trial's record into its Optuna trial.

Imported only by the Ray backend (it imports Ray). Module-level classes, so Ray can pickle the searcher
when it checkpoints a run and restore it on resume.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from refiner_nas.search.records import record_fields
from refiner_nas.search.space import SearchSpace


class SpaceSuggestion:
    """Optuna define-by-run function: draw one architecture of the space (by file or shipped name)."""

    def __init__(self, space: str) -> None:
        self.space_spec = space

    @cached_property
    def space(self) -> SearchSpace:
        return SearchSpace.load(self.space_spec)

    def __call__(self, trial: optuna.Trial) -> None:
        self.space.suggest(trial)

    def __getstate__(self) -> dict[str, Any]:
        return {"space_spec": self.space_spec}


class RecordingOptunaSearch(OptunaSearch):
    """Writes the record and the budget constraints a Ray trial reported into its Optuna trial; a trial
    that ASHA stopped early, or one over budget (never trained) when ``prune_over_budget``
    (``refiner_nas.search.samplers._factory.prunes_over_budget``), is told to Optuna as pruned; one whose
    Optuna trial was recorded as interrupted is recorded as a retry of it."""

    def __init__(self, *args: Any, prune_over_budget: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prune_over_budget = prune_over_budget

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        trial = self._ot_trials.get(trial_id)
        record = json.loads((result or {}).get("record") or "{}")
        stopped = not error and record.get("status") == "running"
        if stopped:
            record |= {"status": "pruned", "stop_reason": f"stopped by ASHA after epoch {result.get('epoch')}"}
        elif error and record.get("status") != "failed":
            record |= {"status": "failed", "fail_reason": "the Ray trial raised; see its log in the run folder"}
        constraints = json.loads((result or {}).get("constraints") or "{}")
        no_result = stopped or (self.prune_over_budget and record.get("status") == "over_budget")
        if trial is not None and self._ot_study._storage.get_trial(trial._trial_id).state.is_finished():
            self._record_retry(trial, record, constraints, None if no_result or error else result)
            self._completed_trials.add(trial_id)
            return
        if trial is not None:
            for key, value in record_fields(**record).items():
                trial.set_user_attr(key, value)
            for name, value in constraints.items():
                trial.set_constraint(name, value)
        super().on_trial_complete(trial_id, result=None if no_result else result, error=error)

    def _record_retry(self, trial: optuna.Trial, record: dict[str, Any], constraints: dict[str, float],
                      result: dict[str, Any] | None) -> None:
        """A Ray trial whose Optuna trial was recorded as interrupted (the launch was stopped), run again by
        ``Tuner.restore``: its result becomes a trial of its own, ``retry_of`` the interrupted one."""
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        values = None if result is None else [result[name] for name in metrics]
        state = (TrialState.COMPLETE if values is not None else
                 TrialState.FAIL if record.get("status") == "failed" else TrialState.PRUNED)
        self._ot_study.add_trial(optuna.trial.create_trial(
            state=state, values=values, params=trial.params, distributions=trial.distributions,
            user_attrs=record_fields(**record, retry_of=trial.number), constraints=constraints or None))
