"""How much of a launch's work is new: the share of trials that trained (fully, or until stopped early) an
architecture not trained before, with 1, 2 and 4 local workers on the default launch (tiny space, digits),
over a few launch seeds.

    python -m refiner_nas.benchmarks.distinct_work                      # 16 trials x 5 epochs, seeds 0-2, workers 1/2/4
    python -m refiner_nas.benchmarks.distinct_work --epochs 2 --seeds 1

A trial that trains nothing new is a duplicate (its architecture was evaluated, or is running elsewhere)
or a failure; ``--trials N`` counts only evaluated architectures, so duplicates cost a little sampling
and storage time, never a training.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna

from refiner_nas.search.runner import launch
from refiner_nas.search.settings import SearchSettings

# Statuses of trials that spent training on their architecture (over-budget ones were only costed).
TRAINED = ("trained", "pruned", "early_stopped", "paused")


@dataclass(frozen=True)
class DistinctWork:
    workers: int
    seed: int
    trials: int
    trained: int
    distinct_trained: int
    statuses: dict[str, int]
    wall_s: float

    @property
    def share_new(self) -> float:
        """Trials that trained an architecture for the first time, as a share of all trials."""
        return self.distinct_trained / self.trials


def measure_distinct_work(settings: SearchSettings) -> DistinctWork:
    started = time.perf_counter()
    study = launch(settings, show_progress=False)
    wall = time.perf_counter() - started
    trials = study.get_trials(deepcopy=False)
    trained = [t.user_attrs["config_hash"] for t in trials if t.user_attrs.get("status") in TRAINED]
    return DistinctWork(
        workers=settings.workers, seed=settings.seed, trials=len(trials), trained=len(trained),
        distinct_trained=len(set(trained)), statuses=dict(Counter(t.user_attrs.get("status") for t in trials)),
        wall_s=wall,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=SearchSettings().trials)
    parser.add_argument("--epochs", type=int, default=SearchSettings().epochs)
    parser.add_argument("--seeds", type=int, default=3, help="Launch seeds 0..N-1 per worker count.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    arguments = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("| workers | share of trials training a new architecture (median, min-max) | trials | "
          "trained twice | statuses (all seeds) | wall s (median) |")
    print("|---|---|---|---|---|---|")
    for workers in arguments.workers:
        runs = []
        for seed in range(arguments.seeds):
            with tempfile.TemporaryDirectory() as run_dir:
                settings = SearchSettings(trials=arguments.trials, epochs=arguments.epochs, workers=workers,
                                          seed=seed, run_dir=Path(run_dir))
                runs.append(measure_distinct_work(settings))
        shares = [r.share_new for r in runs]
        statuses = sum((Counter(r.statuses) for r in runs), Counter())
        trained_twice = sum(r.trained - r.distinct_trained for r in runs)
        print(f"| {workers} | {statistics.median(shares):.2f} ({min(shares):.2f}-{max(shares):.2f}) | "
              f"{statistics.median(r.trials for r in runs):.0f} | {trained_twice} | "
              f"{dict(sorted(statuses.items()))} | {statistics.median(r.wall_s for r in runs):.0f} |")


if __name__ == "__main__":
    main()
