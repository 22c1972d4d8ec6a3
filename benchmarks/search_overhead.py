"""The search harness's own cost: everything in a launch that is not proxy training.

Overhead = the launch's wall time minus the time trials spent training and evaluating (each trial's
``train_time_s``): sampling, storage writes, cost counting, data loading, model building, the progress
display. Reported per trial and as a share of the launch (target: under 5%).

    python -m benchmarks.search_overhead            # the default launch (tiny space, digits)
    python -m benchmarks.search_overhead --trials 4 --epochs 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from search.launch import launch
from search.records import TrialRecord
from search.settings import SearchSettings


@dataclass(frozen=True)
class OverheadReport:
    trials: int
    wall_s: float
    training_s: float
    per_trial_overhead_s: tuple[float, ...]

    @property
    def overhead_s(self) -> float:
        return self.wall_s - self.training_s

    @property
    def share(self) -> float:
        """Overhead as a fraction of the launch's wall time."""
        return self.overhead_s / self.wall_s

    def describe(self) -> str:
        overheads = sorted(self.per_trial_overhead_s)
        quartiles = statistics.quantiles(overheads, n=4) if len(overheads) > 1 else [overheads[0]] * 3
        return (
            f"{self.trials} trials in {self.wall_s:.1f} s, {self.training_s:.1f} s training and evaluating: "
            f"harness overhead {self.overhead_s:.2f} s = {100 * self.share:.2f}% of the launch; per trial "
            f"(outside training) median {quartiles[1]:.3f} s, IQR {quartiles[0]:.3f}-{quartiles[2]:.3f} s"
        )


def measure_search_overhead(settings: SearchSettings, *, show_progress: bool = True) -> OverheadReport:
    """Run ``settings`` as a fresh launch and split its wall time into training and the rest."""
    started = time.perf_counter()
    study = launch(settings, show_progress=show_progress)
    wall = time.perf_counter() - started
    training = 0.0
    per_trial = []
    for trial in study.get_trials(deepcopy=False):
        record = TrialRecord.from_trial(trial)
        trained = record.train_time_s or 0.0
        training += trained
        if trial.datetime_start and trial.datetime_complete:
            per_trial.append((trial.datetime_complete - trial.datetime_start).total_seconds() - trained)
    return OverheadReport(len(study.trials), wall, training, tuple(per_trial))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=SearchSettings().trials)
    parser.add_argument("--epochs", type=int, default=SearchSettings().epochs)
    parser.add_argument("--space", default=SearchSettings().space)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as run_dir:
        settings = SearchSettings(
            space=arguments.space, trials=arguments.trials, epochs=arguments.epochs, run_dir=Path(run_dir)
        )
        print(measure_search_overhead(settings).describe())


if __name__ == "__main__":
    main()
