"""One simulated search on a table: a real launch's trial loop, its hypervolume after every trial.

The study lives in memory; sampler, pruner, early stop and trial runner are the launch's
(``refiner_nas.search.samplers._factory.make_sampler``, ``refiner_nas.search.trial._runner.TrialRunner``), the
evaluator reads the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, get_args

import optuna
import pandas as pd

from refiner_nas.search.evaluation import table_evaluator
from refiner_nas.search.samplers import make_sampler, with_prescreen
from refiner_nas.search.settings import Proxy, Sampler, SearchSettings, Stopper
from refiner_nas.search.space import Budget
from refiner_nas.search.stoppers import make_pruner
from refiner_nas.search.tabular import HypervolumeTracker, cached_table, table_settings, table_space
from refiner_nas.search.trial import TrialRunner

StopperChoice = Literal["none"] | Stopper


@dataclass(frozen=True)
class Strategy:
    """A sampler, how trials stop early (``none``: every trial trains for the full budget) and how many
    candidates ``proxy`` pre-screens before each trial (0: none)."""

    sampler: Sampler
    stopper: StopperChoice
    prescreen: int = 0
    proxy: Proxy = "naswot"

    @property
    def name(self) -> str:
        screen = f"+{self.proxy}:{self.prescreen}" if self.prescreen else ""
        return f"{self.sampler}+{self.stopper}{screen}"

    @classmethod
    def parse(cls, text: str) -> Strategy:
        """``"tpe+mo_asha"`` or ``"tpe+none+naswot:8"`` (the inverse of ``name``).

        Raises:
            ValueError: not SAMPLER+STOPPER[+PROXY:K] with known names and K >= 1.
        """
        sampler, _, rest = text.partition("+")
        stopper, _, screen = rest.partition("+")
        proxy, _, count = screen.partition(":")
        samplers, stoppers = tuple(s for s in get_args(Sampler) if s != "grid"), ("none", *get_args(Stopper))
        proxies = get_args(Proxy)
        if (sampler not in samplers or stopper not in stoppers
                or (screen and (proxy not in proxies or not count.isdigit() or int(count) < 1))):
            raise ValueError(f"strategy {text!r} must be SAMPLER+STOPPER[+PROXY:K] with a sampler from {samplers}, "
                             f"a stopper from {stoppers} and a proxy from {proxies} scoring K >= 1 candidates, "
                             "e.g. tpe+mo_asha or tpe+none+naswot:8")
        if screen:
            return cls(sampler, stopper, int(count), proxy)  # type: ignore[arg-type]
        return cls(sampler, stopper)  # type: ignore[arg-type]

    def settings(self, table_path: str | Path, *, seed: int, objectives: str, trials: int) -> SearchSettings:
        table = cached_table(str(table_path))
        return table_settings(table, table_path, sampler=self.sampler, early_stop=self.stopper != "none",
                              stopper="dominance" if self.stopper == "none" else self.stopper, seed=seed,
                              objectives=objectives, trials=trials, prescreen=self.prescreen, proxy=self.proxy)


@cache
def _proxy_memo(table_path: str, proxy: Proxy) -> dict[str, tuple[float, float]]:
    # Proxy scores of the table's architectures, shared by every search of this process.
    return {}


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
    (cumulative epochs trained so far), ``prescreen_s`` (cumulative seconds of pre-screening: proposals
    and each architecture's first proxy score) and ``hv_params``, ``hv_macs`` (hypervolume ratios to the
    true front).

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
    evaluator = table_evaluator(settings, space)
    sampler = with_prescreen(make_sampler(settings, space), settings, space, evaluator,
                             memo=_proxy_memo(str(table_path), settings.proxy))
    study = optuna.create_study(directions=[o.direction for o in settings.objective_list], sampler=sampler,
                                pruner=make_pruner(settings))
    runner = TrialRunner(evaluator)
    tracker = HypervolumeTracker(table, budget=budget)
    rows: list[dict[str, object]] = []
    spent, screening = 0, 0.0

    def objective(trial: optuna.Trial) -> Sequence[float]:
        # Wraps the runner instead of an Optuna callback, which deep-copies every finished trial.
        nonlocal spent, screening
        try:
            return runner(trial)
        finally:
            # From the storage: pre-screening writes there before the trial object exists.
            fields = trial.study._storage.get_trial(trial._trial_id).user_attrs
            status = fields.get("status", "failed")
            if status != "duplicate":
                spent += int(fields.get("epochs_run", 0))
            screening += float(fields.get("prescreen_s", 0.0))
            if status == "trained":
                tracker.add(fields["config_hash"])
            rows.append({"trial": trial.number, "status": status, "epochs": spent, "prescreen_s": screening,
                         **{f"hv_{cost}": ratio for cost, ratio in tracker.ratios.items()}})
            if spent >= epoch_budget or min(tracker.ratios.values()) >= 1.0:
                trial.study.stop()

    study.optimize(objective, n_trials=max_trials)
    return pd.DataFrame(rows)
