"""Results of searches: the leaderboard (with the paper's Table 7), Pareto fronts, plots, export for
full training, training recipes and the full-training driver.

Modules (import them directly; this package imports nothing heavy):
``schema`` (the leaderboard's versioned columns), ``store`` (the Parquet file), ``collect`` (trials
into rows), ``entries`` (full-training results), ``leaderboard`` (selection, sorting, rendering),
``pareto`` (fronts and hypervolume), ``plots``, ``export``, ``recipes``, ``train``, ``distributed``
(DDP under torchrun), ``reference`` (Table 7). ``baselines/`` holds the committed benchmark baselines.
The commands are ``refiner_nas.cli.results``.
"""

__all__ = [
    "collect",
    "distributed",
    "entries",
    "export",
    "leaderboard",
    "pareto",
    "plots",
    "recipes",
    "reference",
    "schema",
    "store",
    "train",
]
