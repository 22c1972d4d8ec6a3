"""Building a benchmark table: train every architecture of a space for the full budget, per seed.

Each (architecture, seed) goes through the same
``refiner_nas.search.evaluation._evaluator.ArchitectureEvaluator`` a real trial uses, so the table holds what a
search would have measured. Finished rows are appended to a JSON-lines file next to the output as they come, so an
interrupted build resumes where it stopped; the Parquet file is written when every row is there.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace, enumerate_space
from refiner_nas.search.tabular import TABLE_VERSION, BenchmarkTable, write_table

# What the builder measures besides top-1: latency needs an objective to be measured by the evaluator.
_MEASURED = "top1:max,params:min,macs:min,latency:min"


class _DictSink:
    """Collects the record fields the evaluator writes (a table row instead of Optuna attributes)."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}

    def write(self, **fields: Any) -> None:
        self.fields.update(fields)

    def set_constraint(self, name: str, value: float) -> None:
        """Budgets do not apply to a table: every architecture is trained."""


def evaluate_row(settings_json: str, params: dict[str, Any], config_json: str, seed: int) -> dict[str, Any]:
    """Train one architecture with one training seed (data split of ``settings.seed``); one table row."""
    from refiner_nas.refiner_space.costs import count_costs
    from refiner_nas.refiner_space.costs.speed import measure_config_speed
    from refiner_nas.search.evaluation import ArchitectureEvaluator, data_loader

    base = SearchSettings.model_validate_json(settings_json)
    config = ModelConfig.from_dict(json.loads(config_json))
    evaluator = ArchitectureEvaluator(
        settings=base.model_copy(update={"seed": seed, "objectives": _MEASURED}),
        space=SearchSpace.load(base.space),
        load_data=data_loader(base),
        count_costs=count_costs,
        measure_speed=lambda c: measure_config_speed(c, device=evaluator.device, threads=_threads()),
    )
    config, data = evaluator.fit_to_data(config)
    sink = _DictSink()
    started = time.perf_counter()
    evaluator.evaluate(config, data, sink, lambda epoch, top1, curve: None)
    fields = sink.fields
    return {"arch_id": config.config_hash(), "space_params": json.dumps(params, sort_keys=True),
            "config": json.dumps(config.to_dict(), sort_keys=True), "seed": seed,
            "top1_curve": list(fields["top1_curve"]), "top1": float(fields["top1"]), "params": int(fields["params"]),
            "macs": int(fields["macs"]), "latency_ms": float(fields["latency_ms"]),
            "train_time_s": float(fields["train_time_s"]), "wall_time_s": time.perf_counter() - started}


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_task(task: tuple[str, dict[str, Any], str, int]) -> dict[str, Any]:
    return evaluate_row(*task)


def partial_path(out: Path) -> Path:
    """Where finished rows wait for the rest: ``OUT.partial.jsonl``."""
    return out.with_name(out.name + ".partial.jsonl")


def _done_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by an interruption; that row is trained again
    return rows


def build_table(
    settings: SearchSettings,
    *,
    seeds: Sequence[int],
    out: str | Path,
    workers: int = 1,
    threads_per_worker: int = 1,
    command: str = "",
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BenchmarkTable | None:
    """Train every architecture of ``settings.space`` for ``settings.epochs`` epochs with each seed in
    ``seeds`` and write the table to ``out`` (Parquet). Resumes from ``OUT.partial.jsonl``.

    ``limit`` trains at most that many new rows and returns None when rows are still missing (a
    partial build, e.g. for tests). ``progress(done, total)`` is called after each row.

    Raises:
        SpaceError: an unknown or continuous space; DatasetError: a missing dataset.
    """
    from refiner_nas.search.runner import prepare_space

    out = Path(out)
    space = prepare_space(settings)
    architectures = enumerate_space(space)
    pending_path = partial_path(out)
    pending_path.parent.mkdir(parents=True, exist_ok=True)
    wanted = {(config.config_hash(), seed) for _, config in architectures for seed in seeds}
    # Rows of architectures or seeds no longer asked for (an edited space) stay in the file but not the table.
    done = [row for row in _done_rows(pending_path) if (row["arch_id"], row["seed"]) in wanted]
    finished = {(row["arch_id"], row["seed"]) for row in done}
    settings_json = settings.model_dump_json()
    tasks = [(settings_json, params, json.dumps(config.to_dict()), seed)
             for seed in seeds for params, config in architectures if (config.config_hash(), seed) not in finished]
    total = len(architectures) * len(seeds)
    started = time.perf_counter()
    new = tasks[:limit] if limit is not None else tasks
    with pending_path.open("a") as sink:
        for row in _evaluate_all(new, workers, threads_per_worker):
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            done.append(row)
            if progress is not None:
                progress(len(done), total)
    if len(done) < total:
        return None
    provenance = _table_provenance(settings, space, seeds, command, workers=workers,
                                   build_seconds=sum(row["wall_time_s"] for row in done),
                                   elapsed_seconds=time.perf_counter() - started)
    table = write_table(pd.DataFrame(done), provenance, out)
    pending_path.unlink()
    return table


def _evaluate_all(tasks: list[tuple[str, dict[str, Any], str, int]], workers: int,
                  threads: int) -> Iterator[dict[str, Any]]:
    if workers <= 1:
        _init_worker(threads)
        yield from map(_run_task, tasks)
        return
    with multiprocessing.get_context("spawn").Pool(workers, _init_worker, (threads,)) as pool:
        yield from pool.imap_unordered(_run_task, tasks)


def _table_provenance(settings: SearchSettings, space: SearchSpace, seeds: Sequence[int], command: str, *,
                      workers: int, build_seconds: float, elapsed_seconds: float) -> dict[str, Any]:
    """``build_seconds``: evaluation time summed over rows (one process each); ``workers`` ran in parallel;
    ``last_session_seconds``: wall time of the session that finished the table."""
    from refiner_nas.search.provenance import provenance

    return {
        "table_version": TABLE_VERSION,
        "space": Path(space.source).stem,
        "space_yaml": Path(space.source).read_text(),
        "dataset": settings.dataset,
        "epochs": settings.epochs,
        "seeds": list(seeds),
        "budget": settings.proxy_recipe(),
        "command": command,
        "build_seconds": round(build_seconds, 1),
        "workers": workers,
        "last_session_seconds": round(elapsed_seconds, 1),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **provenance(settings.device),
    }
