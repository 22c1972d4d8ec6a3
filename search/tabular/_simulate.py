"""One simulated search on a table: a real launch's trial loop, its hypervolume after every trial.

The study lives in memory; sampler, pruner, early stop and trial runner are the launch's
(:func:`search.study.make_sampler`, :class:`search.trial.TrialRunner`), the evaluator reads the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import optuna
import pandas as pd

from search.settings import Sampler, SearchSettings, Stopper
from search.space import Budget
from search.study import make_pruner, make_sampler
from search.tabular._backend import cached_table, table_evaluator, table_settings, table_space
from search.tabular._hypervolume import HypervolumeTracker
from search.trial import TrialRunner

StopperChoice = Literal["none"] | Stopper


@dataclass(frozen=True)
class Strategy:
    """A sampler and how trials stop early (``none``: every trial trains for the full budget)."""

    sampler: Sampler
    stopper: StopperChoice

    @property
    def name(self) -> str:
        return f"{self.sampler}+{self.stopper}"

    @classmethod
    def parse(cls, text: str) -> Strategy:
        """``"tpe+mo_asha"`` (the inverse of :attr:`name`).

        Raises:
            ValueError: not SAMPLER+STOPPER with known names.
        """
        sampler, _, stopper = text.partition("+")
        samplers, stoppers = ("tpe", "nsga2", "random", "gp"), ("none", "dominance", "mo_asha")
        if sampler not in samplers or stopper not in stoppers:
            raise ValueError(f"strategy {text!r} must be SAMPLER+STOPPER with a sampler from {samplers} and a "
                             f"stopper from {stoppers}, e.g. tpe+mo_asha")
        return cls(sampler, stopper)  # type: ignore[arg-type]

    def settings(self, table_path: str | Path, *, seed: int, objectives: str, trials: int) -> SearchSettings:
        table = cached_table(str(table_path))
        return table_settings(table, table_path, sampler=self.sampler, early_stop=self.stopper != "none",
                              stopper="dominance" if self.stopper == "none" else self.stopper, seed=seed,
                              objectives=objectives, trials=trials)


def simulate_search(
    table_path: str | Path,
    strategy: Strategy,
    *,
    seed: int,
    objectives: str = "top1:max,params:min",
    epoch_budget: int | None = None,
    max_trials: int | None = None,
    budget: Budget | None = None,
) -> pd.DataFrame:
    """Run one simulated search; one row per finished trial with ``trial``, ``status``, ``epochs``
    (cumulative epochs trained so far) and ``hv_params``, ``hv_macs`` (hypervolume ratios to the true front).

    The search stops when it has spent ``epoch_budget`` epochs (default: training the whole table once),
    after ``max_trials`` trials (default four times the table's architectures: repeats cost nothing), or
    when it has found the whole true front in both planes. With ``budget`` (cost limits the table's space
    lacks), architectures over it are never trained and the true front is that of the others.
    """
    table = cached_table(str(table_path))
    architectures = len(table.architectures)
    epoch_budget = epoch_budget or architectures * table.epochs
    max_trials = max_trials or 4 * architectures
    settings = strategy.settings(table_path, seed=seed, objectives=objectives, trials=max_trials)
    space = table_space(table) if budget is None else table_space(table).with_budget(budget)
    study = optuna.create_study(directions=[o.direction for o in settings.objective_list],
                                sampler=make_sampler(settings, space), pruner=make_pruner(settings))
    runner = TrialRunner(table_evaluator(settings, space))
    tracker = HypervolumeTracker(table, budget=budget)
    rows: list[dict[str, object]] = []
    spent = 0

    def objective(trial: optuna.Trial) -> Sequence[float]:
        # Wraps the runner instead of an Optuna callback, which deep-copies every finished trial.
        nonlocal spent
        try:
            return runner(trial)
        finally:
            fields = trial.user_attrs
            status = fields.get("status", "failed")
            if status != "duplicate":
                spent += int(fields.get("epochs_run", 0))
            if status == "trained":
                tracker.add(fields["config_hash"])
            rows.append({"trial": trial.number, "status": status, "epochs": spent,
                         **{f"hv_{cost}": ratio for cost, ratio in tracker.ratios.items()}})
            if spent >= epoch_budget or min(tracker.ratios.values()) >= 1.0:
                trial.study.stop()

    study.optimize(objective, n_trials=max_trials)
    return pd.DataFrame(rows)
