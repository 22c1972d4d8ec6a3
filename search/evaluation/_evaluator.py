"""Evaluating one architecture: costs first, the budget, then proxy training.

Shared by the Optuna runner and the Ray Tune trainable; where the record goes (Optuna user attributes,
Ray results) is the caller's ``RecordSink``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from refiner_nas.refiner_space import ModelConfig, build_model, set_refiner_fold
from refiner_nas.refiner_space.data import DataBundle
from refiner_nas.refiner_space.training import resolve_device, seed_everything, train_model
from refiner_nas.search.provenance import provenance
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace
from refiner_nas.search.storages import this_worker


class RecordSink(Protocol):
    """Where a trial's record fields and budget constraints are written as soon as they are known."""

    def write(self, **fields: Any) -> None: ...

    def set_constraint(self, name: str, value: float) -> None: ...


@dataclass(frozen=True)
class TrainingState:
    """Where a trial keeps its training state after every epoch (``directory``; None: nowhere), and the
    curve of the epochs already done there (a resumed trial goes on after them)."""

    directory: Path | None = None
    done: tuple[float, ...] = ()


EpochCallback = Callable[[int, float, list[float]], None]
# report(epoch, top1, seconds of training so far) after each epoch from len(state.done) on; returns the
# whole top-1 curve, the epochs done before included.
TrainStep = Callable[[ModelConfig, DataBundle, Callable[[int, float, float], None], TrainingState], list[float]]


class ArchitectureEvaluator:
    """Costs, budget check and proxy training of configurations drawn from one space.

    Args:
        load_data: the dataset at a given image size (cached by the caller).
        count_costs: parameters, MACs and FLOPs of a configuration.
        measure_speed: (batch-1 latency in ms, images/s) on the search device; only called when an
            objective or the budget needs it.
        train: the training step; default ``train_proxy`` (a table backend reads curves instead,
            and keeps no training state: ``checkpoints`` is then False).
    """

    def __init__(
        self,
        *,
        settings: SearchSettings,
        space: SearchSpace,
        load_data: Callable[[int | tuple[int, int]], DataBundle],
        count_costs: Callable[[ModelConfig], Any],
        measure_speed: Callable[[ModelConfig], tuple[float, float]],
        train: TrainStep | None = None,
    ) -> None:
        self.settings = settings
        self.space = space
        self.objectives = settings.objective_list
        self.load_data = load_data
        self.count_costs = count_costs
        self.measure_speed = measure_speed
        self.train = train or self.train_proxy
        self.checkpoints = train is None
        self.device = str(resolve_device(settings.device))
        self.budget, self.budget_key = settings.proxy_recipe(), settings.proxy_recipe_key()
        self.train_settings = settings.train_settings()
        self.needs_speed = space.budget.max_latency_ms is not None or any(
            o.name in ("latency", "throughput") for o in self.objectives
        )

    def fit_to_data(self, config: ModelConfig) -> tuple[ModelConfig, DataBundle]:
        """The configuration with the dataset's channels and classes, and the dataset at its size."""
        data = self.load_data(config.img_size)
        return config.replace(in_chans=data.in_chans, num_classes=data.num_classes), data

    def describe(self, config: ModelConfig, data: DataBundle, sink: RecordSink, **extra: Any) -> None:
        """Write what is known before anything is computed: architecture, data, budget, provenance."""
        sink.write(status="running", config=config.to_dict(), config_hash=config.config_hash(), dataset=data.name,
                   budget=self.budget, budget_key=self.budget_key, provenance=provenance(self.device),
                   worker=this_worker(), **extra)

    def evaluate(self, config: ModelConfig, data: DataBundle, sink: RecordSink, on_epoch: EpochCallback,
                 state: TrainingState = TrainingState()) -> list[float]:
        """Count, check the budget, train (on from ``state``); returns the objective values in the settings' order.

        A configuration over budget is never trained: its status is ``over_budget``, its top-1 is recorded
        as 0 and its constraints mark it infeasible; runners tell Optuna such a trial as pruned, not as a
        result. ``on_epoch(epoch, top1, curve)`` runs after each epoch's record is written and may raise to
        stop the trial. ``epochs_run`` counts the epochs this call trained; the curve holds ``state.done`` too.
        """
        started = time.perf_counter()
        costs = self.count_costs(config)
        latency_ms = throughput = None
        if self.needs_speed:
            latency_ms, throughput = self.measure_speed(config)
        excess = self.space.budget.constraint_values(params=costs.params, macs=costs.macs, latency_ms=latency_ms)
        sink.write(params=costs.params, macs=costs.macs, flops=costs.flops, latency_ms=latency_ms,
                   throughput=throughput, constraint_values=list(excess.values()))
        for name, value in excess.items():
            sink.set_constraint(name, value)
        measured = {"params": costs.params / 1e6, "macs": costs.macs / 1e9, "latency": latency_ms or 0.0,
                    "throughput": throughput or 0.0}
        if any(value > 0 for value in excess.values()):
            sink.write(status="over_budget", top1=0.0, wall_time_s=time.perf_counter() - started)
            return self.values(top1=0.0, measured=measured)

        curve: list[float] = list(state.done)
        train_time_s = 0.0

        def report(epoch: int, top1: float, elapsed_s: float) -> None:
            # Time inside the training loop so far: a trial stopped after this epoch keeps it too.
            nonlocal train_time_s
            curve.append(top1)
            train_time_s = elapsed_s
            sink.write(top1_curve=curve, epochs_run=len(curve) - len(state.done), train_time_s=elapsed_s)
            on_epoch(epoch, top1, curve)

        reported = self.train(config, data, report, state)
        sink.write(status="trained", top1=reported[-1], top1_curve=list(reported),
                   epochs_run=len(reported) - len(state.done), train_time_s=train_time_s,
                   wall_time_s=time.perf_counter() - started)
        return self.values(top1=reported[-1], measured=measured)

    def train_proxy(self, config: ModelConfig, data: DataBundle, report: Callable[[int, float, float], None],
                    state: TrainingState) -> list[float]:
        """Build and train ``config`` with the launch's recipe (its state saved to, and resumed from,
        ``state.directory``); its reported top-1 curve."""
        seed_everything(self.settings.seed)
        model = build_model(config)
        if config.attention == "refiner" and config.attention_reduction:
            # The same function and gradients, computed as one dense k×k convolution: several times
            # faster in training, and the r·H expanded maps are never stored.
            set_refiner_fold(model, True)
        started = time.perf_counter()
        settings = dataclasses.replace(self.train_settings, checkpoint_dir=state.directory, resume=bool(state.done))
        result = train_model(model, data, settings,
                             report=lambda epoch, top1: report(epoch, top1, time.perf_counter() - started))
        return list(result.reported_curve)

    def cost_values(self, sink_fields: dict[str, Any]) -> dict[str, float]:
        """The cost objectives (params in M, MACs in G, latency, throughput) from written record fields."""
        return {"params": sink_fields["params"] / 1e6, "macs": sink_fields["macs"] / 1e9,
                "latency": sink_fields.get("latency_ms") or 0.0, "throughput": sink_fields.get("throughput") or 0.0}

    def values(self, *, top1: float, measured: dict[str, float]) -> list[float]:
        everything = {"top1": top1, **measured}
        return [everything[o.name] for o in self.objectives]
