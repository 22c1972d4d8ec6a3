"""One search trial: sample an architecture, cost it, skip it if over budget or already seen, train it.

Everything a trial learns goes into its record (:mod:`search.records`) as soon as it is known, so a
trial that fails or is interrupted still says how far it got and why.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from refiner_space import ModelConfig, build_model
from search.data import DataBundle
from search.early_stop import DominanceEarlyStop, DominatedTrial
from search.provenance import provenance
from search.records import TrialRecord, record_fields
from search.settings import SearchSettings
from search.space import SearchSpace
from search.training import resolve_device, seed_everything, train_model

INTERRUPTED = "interrupted by the user (Ctrl-C); the next launch retries this configuration"
WORKER = f"{socket.gethostname()}:{os.getpid()}"


class DuplicateOfFailedTrial(RuntimeError):
    """The same architecture and budget already failed in this study; it is not trained again."""


class TrialRunner:
    """The Optuna objective of a launch: ``runner(trial)`` returns the objective values.

    Args:
        load_data: returns the dataset at a given image size (cached by the caller).
        measure_speed: returns (batch-1 latency in ms, images/s) of a model on the search device; only
            called when an objective or the budget needs it.
    """

    def __init__(
        self,
        *,
        settings: SearchSettings,
        space: SearchSpace,
        load_data: Callable[[int | tuple[int, int]], DataBundle],
        count_costs: Callable[[ModelConfig], Any],
        measure_speed: Callable[[ModelConfig], tuple[float, float]],
    ) -> None:
        self.settings = settings
        self.space = space
        self.objectives = settings.objective_list
        self.load_data = load_data
        self.count_costs = count_costs
        self.measure_speed = measure_speed
        self.device = str(resolve_device(settings.device))
        self.budget, self.budget_key = settings.budget(), settings.budget_key()
        self.train_settings = settings.train_settings()
        self.needs_speed = space.budget.max_latency_ms is not None or any(
            o.name in ("latency", "throughput") for o in self.objectives
        )
        self.early_stop = DominanceEarlyStop(self.objectives) if settings.early_stop else None

    def __call__(self, trial: optuna.Trial) -> Sequence[float]:
        started = time.perf_counter()
        try:
            return self._run(trial, started)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            self._write(trial, status="failed", fail_reason=INTERRUPTED)
            raise
        except Exception as error:
            self._write(
                trial,
                status="failed",
                fail_reason=f"{type(error).__name__}: {error}",
                wall_time_s=time.perf_counter() - started,
            )
            raise

    def _run(self, trial: optuna.Trial, started: float) -> Sequence[float]:
        config = self.space.suggest(trial)
        data = self.load_data(config.img_size)
        config = config.replace(in_chans=data.in_chans, num_classes=data.num_classes)
        config_hash = config.config_hash()
        self._write(
            trial,
            status="running",
            config=config.to_dict(),
            config_hash=config_hash,
            dataset=data.name,
            budget=self.budget,
            budget_key=self.budget_key,
            provenance=provenance(self.device),
            worker=WORKER,
            retry_of=_retried_trial_number(trial),
        )
        earlier = self._earlier_result(trial.study, config_hash, trial.number)
        if earlier is not None:
            return self._reuse(trial, earlier, started)

        costs = self.count_costs(config)
        latency_ms = throughput = None
        if self.needs_speed:
            latency_ms, throughput = self.measure_speed(config)
        excess = self.space.budget.constraint_values(params=costs.params, macs=costs.macs, latency_ms=latency_ms)
        self._write(
            trial,
            params=costs.params,
            macs=costs.macs,
            flops=costs.flops,
            latency_ms=latency_ms,
            throughput=throughput,
            constraint_values=list(excess.values()),
        )
        for name, value in excess.items():
            trial.set_constraint(name, value)
        if any(value > 0 for value in excess.values()):
            # Never trained: top-1 is recorded as 0 so samplers see the trial, and constraints mark it.
            self._write(trial, status="over_budget", top1=0.0, wall_time_s=time.perf_counter() - started)
            return self._values(top1=0.0, costs=costs, latency_ms=latency_ms, throughput=throughput)

        seed_everything(self.settings.seed)
        model = build_model(config)
        curve: list[float] = []
        report = self._reporter(trial, curve, costs=costs, latency_ms=latency_ms, throughput=throughput)
        result = train_model(model, data, self.train_settings, report=report)
        self._write(
            trial,
            status="trained",
            top1=result.final_top1,
            top1_curve=list(result.reported_curve),
            epochs_run=result.epochs_run,
            train_time_s=result.train_time_s + result.eval_time_s,
            wall_time_s=time.perf_counter() - started,
        )
        return self._values(top1=result.final_top1, costs=costs, latency_ms=latency_ms, throughput=throughput)

    def _reporter(self, trial: optuna.Trial, curve: list[float], **cost_values: Any) -> Callable[[int, float], None]:
        single_objective = len(self.objectives) == 1

        def report(epoch: int, top1: float) -> None:
            curve.append(top1)
            self._write(trial, top1_curve=curve, epochs_run=len(curve))
            if single_objective:
                trial.report(top1, epoch)
                if trial.should_prune():
                    reason = f"pruned by {type(trial.study.pruner).__name__} at epoch {epoch + 1}"
                    self._write(trial, status="pruned", stop_reason=reason)
                    raise optuna.TrialPruned(reason)
            elif self.early_stop is not None:
                costs = self._cost_values(**cost_values)
                completed = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                dominator = self.early_stop.dominating_trial(completed, len(curve), top1, costs, self.budget_key)
                if dominator is not None:
                    reason = f"dominated at epoch {len(curve)} by trial {dominator}"
                    self._write(trial, status="early_stopped", stop_reason=reason)
                    raise DominatedTrial(reason)

        return report

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

    def _reuse(self, trial: optuna.Trial, earlier: FrozenTrial, started: float) -> Sequence[float]:
        record = TrialRecord.from_trial(earlier)
        copied = record.model_dump(
            include={
                "params",
                "macs",
                "flops",
                "latency_ms",
                "throughput",
                "constraint_values",
                "top1_curve",
                "top1",
                "epochs_run",
            }
        )
        self._write(
            trial, **copied, status="duplicate", duplicate_of=earlier.number, wall_time_s=time.perf_counter() - started
        )
        for name, value in earlier.constraints.items():
            trial.set_constraint(name, value)
        if earlier.state == TrialState.COMPLETE:
            return earlier.values
        if earlier.state == TrialState.PRUNED:
            raise optuna.TrialPruned(f"same architecture and budget as pruned trial {earlier.number}")
        raise DuplicateOfFailedTrial(
            f"same architecture and budget as failed trial {earlier.number} ({record.fail_reason})"
        )

    def _cost_values(self, *, costs: Any, latency_ms: float | None, throughput: float | None) -> dict[str, float]:
        return {
            "params": costs.params / 1e6,
            "macs": costs.macs / 1e9,
            "latency": latency_ms or 0.0,
            "throughput": throughput or 0.0,
        }

    def _values(self, *, top1: float, costs: Any, latency_ms: float | None, throughput: float | None) -> list[float]:
        values = {"top1": top1, **self._cost_values(costs=costs, latency_ms=latency_ms, throughput=throughput)}
        return [values[o.name] for o in self.objectives]

    @staticmethod
    def _write(trial: optuna.Trial, **fields: Any) -> None:
        for key, value in record_fields(**fields).items():
            trial.set_user_attr(key, value)


def _retried_trial_number(trial: optuna.Trial) -> int | None:
    """The trial this one re-runs after its worker died (Optuna's heartbeat retry), if any."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    with warnings.catch_warnings():  # marked experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
