"""The search harness's own cost: everything in a launch that is not proxy training.

Per trial, overhead = the trial's wall time minus the time it spent in the training loop (its
``train_time_s``: training and per-epoch evaluation): sampling, storage writes, cost counting, model
building. It is reported as a share of trial wall time (target: under 5%). The launch's one-off start
(imports, loading the data, opening the study) is reported separately.

    python -m refiner_nas.benchmarks.search_overhead            # the default launch (tiny space, digits)
    python -m refiner_nas.benchmarks.search_overhead --trials 4 --epochs 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from refiner_nas.search.records import TrialRecord
from refiner_nas.search.runner import launch
from refiner_nas.search.settings import SearchSettings


@dataclass(frozen=True)
class OverheadReport:
    launch_wall_s: float
    trial_wall_s: tuple[float, ...]
    trial_training_s: tuple[float, ...]

    @property
    def per_trial_overhead_s(self) -> tuple[float, ...]:
        return tuple(w - t for w, t in zip(self.trial_wall_s, self.trial_training_s, strict=True))

    @property
    def share(self) -> float:
        """Overhead as a fraction of the trials' wall time, all trials together."""
        return sum(self.per_trial_overhead_s) / sum(self.trial_wall_s)

    @property
    def startup_s(self) -> float:
        """The launch's wall time outside its trials (imports excluded): data, space, study."""
        return self.launch_wall_s - sum(self.trial_wall_s)

    def describe(self) -> str:
        overheads = sorted(self.per_trial_overhead_s)
        shares = sorted(o / w for o, w in zip(self.per_trial_overhead_s, self.trial_wall_s, strict=True))
        q_over = statistics.quantiles(overheads, n=4) if len(overheads) > 1 else [overheads[0]] * 3
        q_share = statistics.quantiles(shares, n=4) if len(shares) > 1 else [shares[0]] * 3
        return (
            f"{len(self.trial_wall_s)} trials, {sum(self.trial_wall_s):.1f} s in trials, of which "
            f"{sum(self.trial_training_s):.1f} s in the training loop: harness overhead {100 * self.share:.2f}% of "
            f"trial time; per trial median {q_over[1]:.3f} s (IQR {q_over[0]:.3f}-{q_over[2]:.3f}), share median "
            f"{100 * q_share[1]:.2f}% (IQR {100 * q_share[0]:.2f}-{100 * q_share[2]:.2f}%); launch "
            f"{self.launch_wall_s:.1f} s, one-off start {self.startup_s:.1f} s"
        )


def measure_search_overhead(settings: SearchSettings, *, show_progress: bool = True) -> OverheadReport:
    """Run ``settings`` as a fresh launch and split its wall time into training and the rest."""
    started = time.perf_counter()
    study = launch(settings, show_progress=show_progress)
    wall = time.perf_counter() - started
    walls, trainings = [], []
    for trial in study.get_trials(deepcopy=False):
        if trial.datetime_start and trial.datetime_complete:
            walls.append((trial.datetime_complete - trial.datetime_start).total_seconds())
            trainings.append(TrialRecord.from_trial(trial).train_time_s or 0.0)
    return OverheadReport(wall, tuple(walls), tuple(trainings))


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
