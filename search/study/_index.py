"""What a worker needs to know of its study's trials, kept up to date in time that does not grow with the study.

Before each trial a worker asks: how many architectures are evaluated, which trials run or wait, which
of them belong to dead workers, and whether this architecture was seen before. Scanning every trial
for each question made a worker's own work grow with the study (quadratic over a search). A finished
trial never changes, so ``StudyIndex.refresh`` looks only at the trials that are new or were
unfinished at the previous refresh, and keeps running counts and an index by architecture.
"""

from __future__ import annotations

from collections import defaultdict

import optuna
from optuna.trial import FrozenTrial, TrialState

from refiner_nas.search.records import evaluated_architecture

_UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)


class StudyIndex:
    """Counts and an architecture index of one study's trials, brought up to date by ``refresh``."""

    def __init__(self) -> None:
        self._reset(study_name=None)

    def _reset(self, study_name: str | None) -> None:
        self._study_name = study_name
        self._seen = 0  # trials numbered below this were looked at
        self.evaluated = 0  # finished trials that evaluated an architecture (search.records.EVALUATED)
        self.unfinished: dict[int, FrozenTrial] = {}  # running and waiting trials, by number
        self._finished_by_architecture: dict[tuple[str, str], list[FrozenTrial]] = defaultdict(list)

    def refresh(self, study: optuna.Study) -> StudyIndex:
        """Take in the trials added or finished since the last refresh (all of them for a new study)."""
        if study.study_name != self._study_name:
            self._reset(study.study_name)
        trials = study.get_trials(deepcopy=False)  # a list of references: no trial is copied
        changed = [trials[number] for number in self.unfinished] + trials[self._seen:]
        self._seen = len(trials)
        for trial in changed:
            if trial.state in _UNFINISHED:
                self.unfinished[trial.number] = trial
                continue
            self.unfinished.pop(trial.number, None)
            self.evaluated += evaluated_architecture(trial.user_attrs)
            key = _architecture(trial)
            if key is not None:
                self._finished_by_architecture[key].append(trial)
        return self

    def count(self, state: TrialState) -> int:
        """Unfinished trials in ``state`` (RUNNING or WAITING)."""
        return sum(trial.state == state for trial in self.unfinished.values())

    def running(self) -> list[FrozenTrial]:
        return [trial for trial in self.unfinished.values() if trial.state == TrialState.RUNNING]

    def same_architecture(self, config_hash: str, budget_key: str) -> list[FrozenTrial]:
        """Trials of this architecture and budget, by number."""
        key = (config_hash, budget_key)
        unfinished = [t for t in self.unfinished.values() if _architecture(t) == key]
        return sorted([*self._finished_by_architecture.get(key, ()), *unfinished], key=lambda t: t.number)


def _architecture(trial: FrozenTrial) -> tuple[str, str] | None:
    config_hash, budget_key = trial.user_attrs.get("config_hash"), trial.user_attrs.get("budget_key")
    return None if config_hash is None or budget_key is None else (config_hash, budget_key)
