"""The simulated backend's evaluator: trials read their costs and learning curve from a benchmark table.

Everything else is a real launch's: the same space, sampler, pruner or early stop, trial runner and records.
Only the training step of ``ArchitectureEvaluator`` (and its cost counter) is swapped, so a search over the
table's space takes seconds. Time is simulated: a trial's ``train_time_s`` is the table's training time for the
epochs it ran.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.refiner_space.data import DataBundle, load_data
from refiner_nas.search.evaluation._evaluator import ArchitectureEvaluator, TrainingState
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace
from refiner_nas.search.tabular import BenchmarkTable
from refiner_nas.search.tabular._replay import FREE_BUDGET_FIELDS, cached_table


class TableLookupError(KeyError):
    """An architecture or budget the table does not hold."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class TableCosts:
    """The cost counts ``ArchitectureEvaluator`` reads, from a table row."""

    params: int
    macs: int

    @property
    def flops(self) -> int:
        return 2 * self.macs


class TableTrainer:
    """Costs and curves of a table's architectures, for one simulated study.

    Each architecture's curve comes from one of the table's seeds, drawn from the study's seed and the
    architecture, so repetitions see different (real) noise and a repeated trial sees the same curve.
    ``replay_fields``: model fields the table does not vary, looked up at their default (a space larger
    than the table, for load tests, replays the curve of the table's architecture).
    ``time_scale``: a trial sleeps this share of the table's training time per epoch (0: no sleep).
    """

    def __init__(self, table: BenchmarkTable, *, seed: int, replay_fields: Sequence[str] = (),
                 time_scale: float = 0.0) -> None:
        self.table, self.seed, self.time_scale = table, seed, time_scale
        self.defaults = {name: ModelConfig.model_fields[name].default for name in replay_fields}
        # Plain dicts: a simulated trial looks rows up a few times and must cost microseconds.
        self.arch = table.architectures[["params", "macs", "latency_ms"]].to_dict("index")
        self.runs: dict[str, list[tuple[list[float], float]]] = {}
        for row in table.rows.sort_values("seed").itertuples():
            epoch_s = float(row.train_time_s) / table.epochs
            self.runs.setdefault(str(row.arch_id), []).append(([float(v) for v in row.top1_curve], epoch_s))

    def _arch_id(self, config: ModelConfig) -> str:
        arch_id = config.model_copy(update=self.defaults).config_hash() if self.defaults else config.config_hash()
        if arch_id not in self.arch:
            raise TableLookupError(
                f"architecture {arch_id} is not in the table (space {self.table.provenance['space']!r}); "
                "search the table's own space"
            )
        return arch_id

    def costs(self, config: ModelConfig) -> TableCosts:
        row = self.arch[self._arch_id(config)]
        return TableCosts(params=int(row["params"]), macs=int(row["macs"]))

    def speed(self, config: ModelConfig) -> tuple[float, float]:
        latency_ms = float(self.arch[self._arch_id(config)]["latency_ms"])
        return latency_ms, 1000.0 / latency_ms

    def curve(self, config: ModelConfig) -> tuple[list[float], float]:
        """The curve this study sees for ``config`` and the table's training seconds per epoch."""
        arch_id = self._arch_id(config)
        runs = self.runs[arch_id]
        digest = hashlib.sha256(f"{self.seed}:{arch_id}".encode()).digest()
        return runs[int.from_bytes(digest[:4], "little") % len(runs)]

    def train(self, config: ModelConfig, data: DataBundle, report: Any, state: TrainingState) -> list[float]:
        """The training step: report each epoch of the table's curve after ``state.done`` with simulated time."""
        curve, epoch_s = self.curve(config)
        start = len(state.done)
        for epoch in range(start, len(curve)):
            if self.time_scale:
                time.sleep(epoch_s * self.time_scale)
            report(epoch, curve[epoch], epoch_s * (epoch + 1 - start))
        return list(curve)


@cache
def _table_data(dataset: str, img_size: int | tuple[int, int], val_fraction: float, split_seed: int) -> DataBundle:
    # Only the shape of the data matters (channels, classes); it is loaded once per process.
    return load_data(dataset, img_size=img_size, val_fraction=val_fraction, split_seed=split_seed)


def table_evaluator(settings: SearchSettings, space: SearchSpace, *, replay_fields: Sequence[str] = (),
                    time_scale: float = 0.0) -> ArchitectureEvaluator:
    """An evaluator that reads ``settings.table`` instead of training (``replay_fields``, ``time_scale``:
    ``TableTrainer``'s).

    Raises:
        TableLookupError: settings whose budget differs from the table's (their results would not be
            the table's); FileNotFoundError / TableSchemaError: an unreadable table.
    """
    if settings.table is None:
        raise ValueError("settings.table is not set: give the benchmark table to read (--backend table:FILE)")
    table = cached_table(str(settings.table))
    budget = table.provenance["budget"]
    differing = [f"{key}={value!r} (table: {budget[key]!r})" for key, value in settings.proxy_recipe().items()
                 if key not in FREE_BUDGET_FIELDS and budget.get(key) != value]
    if differing:
        raise TableLookupError(f"the launch's budget differs from table {settings.table}: {', '.join(differing)}")
    trainer = TableTrainer(table, seed=settings.seed, replay_fields=replay_fields, time_scale=time_scale)
    split_seed = int(budget["seed"])

    def data_for(img_size: int | tuple[int, int]) -> DataBundle:
        size = tuple(img_size) if isinstance(img_size, list) else img_size
        return _table_data(settings.dataset, size, settings.val_fraction, split_seed)

    return ArchitectureEvaluator(settings=settings, space=space, load_data=data_for, count_costs=trainer.costs,
                                 measure_speed=trainer.speed, train=trainer.train)
