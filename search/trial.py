"""One search trial: sample an architecture, cost it, skip it if over budget or already seen, train it.

Everything a trial learns goes into its record (:mod:`search.records`) as soon as it is known, so a
trial that fails or is interrupted still says how far it got and why.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.evaluate import ArchitectureEvaluator, EpochCallback
from search.records import TrialRecord, record_fields
from search.stoppers import EarlyStoppedTrial, make_stopper

INTERRUPTED = "interrupted by the user (Ctrl-C); the next launch retries this configuration"


class DuplicateOfFailedTrial(RuntimeError):
    """The same architecture and budget already failed in this study; it is not trained again."""


class OptunaSink:
    """Writes record fields to an Optuna trial's user attributes and keeps a copy for the runner."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.fields: dict[str, Any] = {}

    def write(self, **fields: Any) -> None:
        for key, value in record_fields(**fields).items():
            self.trial.set_user_attr(key, value)
            self.fields[key] = value

    def set_constraint(self, name: str, value: float) -> None:
        self.trial.set_constraint(name, value)


class TrialRunner:
    """The Optuna objective of a launch: ``runner(trial)`` returns the objective values.

    On top of :class:`ArchitectureEvaluator` it reuses earlier results of the same architecture and
    budget, prunes single-objective trials and early-stops dominated multi-objective ones.
    """

    def __init__(self, evaluator: ArchitectureEvaluator) -> None:
        self.evaluator = evaluator
        self.objectives = evaluator.objectives
        self.budget_key = evaluator.budget_key
        settings = evaluator.settings
        self.early_stop = (make_stopper(settings.stopper, self.objectives, settings.epochs) if settings.early_stop
                           else None)

    def __call__(self, trial: optuna.Trial) -> Sequence[float]:
        started = time.perf_counter()
        sink = OptunaSink(trial)
        try:
            return self._run(trial, sink, started)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            sink.write(status="failed", fail_reason=INTERRUPTED)
            raise
        except Exception as error:
            sink.write(status="failed", fail_reason=f"{type(error).__name__}: {error}",
                       wall_time_s=time.perf_counter() - started)
            raise

    def _run(self, trial: optuna.Trial, sink: OptunaSink, started: float) -> Sequence[float]:
        config, data = self.evaluator.fit_to_data(self.evaluator.space.suggest(trial))
        self.evaluator.describe(config, data, sink, retry_of=_retried_trial_number(trial))
        earlier = self._earlier_result(trial.study, config.config_hash(), trial.number)
        if earlier is not None:
            return self._reuse(sink, earlier, started)
        return self.evaluator.evaluate(config, data, sink, self._on_epoch(trial, sink))

    def _on_epoch(self, trial: optuna.Trial, sink: OptunaSink) -> EpochCallback:
        single_objective = len(self.objectives) == 1

        def on_epoch(epoch: int, top1: float, curve: list[float]) -> None:
            if single_objective:
                trial.report(top1, epoch)
                if trial.should_prune():
                    reason = f"pruned by {type(trial.study.pruner).__name__} at epoch {epoch + 1}"
                    sink.write(status="pruned", stop_reason=reason)
                    raise optuna.TrialPruned(reason)
            elif self.early_stop is not None:
                reason = self.early_stop.stop_reason(
                    trial.study.get_trials(deepcopy=False), number=trial.number, epoch=len(curve), top1=top1,
                    costs=self.evaluator.cost_values(sink.fields), budget_key=self.budget_key)
                if reason is not None:
                    sink.write(status="early_stopped", stop_reason=reason)
                    raise EarlyStoppedTrial(reason)

        return on_epoch

    def _earlier_result(self, study: optuna.Study, config_hash: str, number: int) -> FrozenTrial | None:
        """A finished trial of the same architecture and budget; not one cut short by Ctrl-C or by the
        death of its worker (failed without a recorded reason), which deserve another try."""
        for earlier in study.get_trials(deepcopy=False):
            attrs = earlier.user_attrs
            if (
                earlier.number == number
                or attrs.get("config_hash") != config_hash
                or attrs.get("budget_key") != self.budget_key
                or attrs.get("fail_reason") == INTERRUPTED
                or (earlier.state == TrialState.FAIL and not attrs.get("fail_reason"))
                or earlier.state in (TrialState.RUNNING, TrialState.WAITING)
            ):
                continue
            return earlier
        return None

    def _reuse(self, sink: OptunaSink, earlier: FrozenTrial, started: float) -> Sequence[float]:
        record = TrialRecord.from_trial(earlier)
        copied = record.model_dump(include={"params", "macs", "flops", "latency_ms", "throughput",
                                            "constraint_values", "top1_curve", "top1", "epochs_run"})
        sink.write(**copied, status="duplicate", duplicate_of=earlier.number, wall_time_s=time.perf_counter() - started)
        for name, value in earlier.constraints.items():
            sink.set_constraint(name, value)
        if earlier.state == TrialState.COMPLETE:
            return earlier.values
        if earlier.state == TrialState.PRUNED:
            raise optuna.TrialPruned(f"same architecture and budget as pruned trial {earlier.number}")
        raise DuplicateOfFailedTrial(
            f"same architecture and budget as failed trial {earlier.number} ({record.fail_reason})"
        )


def _retried_trial_number(trial: optuna.Trial) -> int | None:
    """The trial this one re-runs after its worker died (Optuna's heartbeat retry), if any."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    with warnings.catch_warnings():  # marked experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
