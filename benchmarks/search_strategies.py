"""Comparing search strategies on a benchmark table: hypervolume against epochs spent, over seeds.

Each (strategy, cost plane, seed) is one simulated search (``refiner_nas.search.tabular.simulate_search``)
with objectives top-1 and that cost; its trace is the hypervolume ratio to the table's true front after
every trial. Summaries give the epochs each strategy needs to reach a fraction of the true hypervolume
(median and quartiles over seeds; a search that never reaches it counts as infinitely many epochs).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from refiner_nas.benchmarks.strategy_names import DEFAULT_STRATEGIES

if TYPE_CHECKING:
    from refiner_nas.search.space import Budget

FRACTIONS = (0.90, 0.95, 0.99)
BASELINE = "random+none"


def _one_search(task: tuple[str, str, str, int, Budget | None]) -> pd.DataFrame:
    import optuna
    import torch

    from refiner_nas.benchmarks.simulate import Strategy, simulate_search

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # thousands of trials: the summary says it all
    torch.set_num_threads(1)  # GP fits and proxies are tiny; searches run one per process

    table_path, strategy, cost, seed, budget = task
    trace = simulate_search(table_path, Strategy.parse(strategy), seed=seed, objectives=f"top1:max,{cost}:min",
                            budget=budget)
    return trace.assign(strategy=strategy, cost=cost, seed=seed, hv=trace[f"hv_{cost}"])[
        ["strategy", "cost", "seed", "trial", "status", "epochs", "prescreen_s", "hv"]]


def run_comparison(
    table_path: str | Path,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    *,
    seeds: Sequence[int] = range(30),
    costs: Sequence[str] = ("params",),
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    budget: Budget | None = None,
) -> pd.DataFrame:
    """Every strategy on every cost plane with every seed; the concatenated traces (one row per trial).
    ``budget``: cost limits imposed on the table's space (its true front is then the one within them).

    Raises:
        ValueError: an unknown strategy or cost; SpaceError: a budget no architecture of the table meets.
    """
    from refiner_nas.benchmarks.simulate import Strategy
    from refiner_nas.search.tabular import cached_table, table_space

    for strategy in strategies:
        Strategy.parse(strategy)
    if budget is not None:
        table_space(cached_table(str(table_path))).with_budget(budget)
    bad = [cost for cost in costs if cost not in ("params", "macs")]
    if bad:
        raise ValueError(f"costs {bad} are not params or macs")
    tasks = [(str(table_path), strategy, cost, seed, budget)
             for cost in costs for strategy in strategies for seed in seeds]
    traces = []
    if workers <= 1:
        results = map(_one_search, tasks)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_one_search, tasks)
    try:
        for trace in results:
            traces.append(trace)
            if progress is not None:
                progress(len(traces), len(tasks))
    finally:
        if pool is not None:
            pool.close()
    return pd.concat(traces, ignore_index=True)


def epochs_to_reach(traces: pd.DataFrame, fractions: Sequence[float] = FRACTIONS) -> pd.DataFrame:
    """Per (strategy, cost, seed, fraction): the cumulative epochs at the first trial whose hypervolume
    ratio reaches the fraction; infinite when the search never reached it."""
    rows = []
    for (strategy, cost, seed), trace in traces.groupby(["strategy", "cost", "seed"], sort=False):
        hv, epochs = trace["hv"].to_numpy(), trace["epochs"].to_numpy()
        for fraction in fractions:
            reached = np.flatnonzero(hv >= fraction - 1e-12)
            rows.append({"strategy": strategy, "cost": cost, "seed": seed, "fraction": fraction,
                         "epochs": float(epochs[reached[0]]) if reached.size else np.inf})
    return pd.DataFrame(rows)


def summarise(reach: pd.DataFrame) -> pd.DataFrame:
    """Median and quartiles of ``epochs_to_reach`` per (cost, fraction, strategy), the share of
    seeds that reached the fraction, and the median as a share of random search without stopping."""
    grouped = reach.groupby(["cost", "fraction", "strategy"])["epochs"]
    # Quartiles on observed values (no interpolation), so searches that never got there (inf) stay inf.
    summary = grouped.agg(median="median", q25=lambda e: e.quantile(0.25, interpolation="lower"),
                          q75=lambda e: e.quantile(0.75, interpolation="higher"),
                          reached=lambda e: float(np.isfinite(e).mean()), seeds="size").reset_index()
    baseline = summary[summary["strategy"] == BASELINE].set_index(["cost", "fraction"])["median"]
    keys = pd.MultiIndex.from_frame(summary[["cost", "fraction"]])
    summary["vs_random"] = summary["median"].to_numpy() / baseline.reindex(keys).to_numpy()
    return summary.sort_values(["cost", "fraction", "median", "strategy"]).reset_index(drop=True)


def hv_curves(traces: pd.DataFrame, grid: np.ndarray) -> pd.DataFrame:
    """Median hypervolume ratio over seeds at each epoch of ``grid`` (a search's value at ``e`` epochs is
    that after its last trial within ``e``; after it stopped, its last value)."""
    rows = []
    for (strategy, cost), runs in traces.groupby(["strategy", "cost"], sort=False):
        values = []
        for _, trace in runs.groupby("seed"):
            epochs, hv = trace["epochs"].to_numpy(), trace["hv"].to_numpy()
            index = np.searchsorted(epochs, grid, side="right") - 1
            values.append(np.where(index >= 0, hv[np.clip(index, 0, None)], 0.0))
        rows += [{"strategy": strategy, "cost": cost, "epochs": e, "hv": h}
                 for e, h in zip(grid, np.median(values, axis=0), strict=True)]
    return pd.DataFrame(rows)


def plot_hv_curves(curves: pd.DataFrame, path: str | Path) -> Path:
    """Draw ``hv_curves`` (one panel per cost plane) to a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costs = list(dict.fromkeys(curves["cost"]))
    figure, axes = plt.subplots(1, len(costs), figsize=(7 * len(costs), 5), squeeze=False)
    for axis, cost in zip(axes[0], costs, strict=True):
        for strategy, curve in curves[curves["cost"] == cost].groupby("strategy", sort=False):
            axis.plot(curve["epochs"], curve["hv"], label=strategy,
                      linestyle="-" if strategy.endswith("mo_asha") else "--" if "dominance" in strategy else ":")
        axis.axhline(0.95, color="grey", linewidth=0.5)
        axis.set(xlabel="cumulative epochs trained", ylabel=f"hypervolume / true (top-1 vs {cost})",
                 ylim=(0.5, 1.01), title=f"median over seeds, top-1 vs {cost}")
        axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
