"""Cluster scale, simulated: W worker processes on one study, each trial replaying a recorded curve.

Workers are real processes, forked from this one once everything is imported. Each opens the storage itself and runs
the launch's own loop (``refiner_nas.search.runner._loop.work_on_study`` with
``refiner_nas.search.trial._runner.TrialRunner``); the trainer reads the shipped benchmark table and sleeps a
scaled-down share of each recorded training time. The space is the table's with a drop-path rate added that the
table ignores (1001 values, 48 048 architectures), so thousands of trials stay mostly distinct. Per trial, each
worker times its storage calls and its sampler (exclusive of each other, main thread only).

    python -m refiner_nas.benchmarks.scale                                  # journal file, W = 1 4 16 64, 400 trials
    python -m refiner_nas.benchmarks.scale --storage postgresql://u:p@127.0.0.1:5432/db --workers 1 4 16 64
    python -m refiner_nas.benchmarks.scale --workers 16 --faults            # kill -9 10% of workers, restart them
    python -m refiner_nas.benchmarks.scale --workers 4 --trials 100 --prefill 0 1000 5000 --sampler tpe

``--faults`` restarts PostgreSQL once mid-run too when the storage is PostgreSQL and ``--pgdata`` names
the server's data folder (``.ci/postgres start`` exports it as REFINER_NAS_PGDATA).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import multiprocessing.process
import os
import random
import signal
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from refiner_nas.benchmarks.postgres_server import postgres_server
from refiner_nas.refiner_space import ModelConfig
from refiner_nas.search.evaluation import ArchitectureEvaluator, TableTrainer, table_evaluator
from refiner_nas.search.pareto import non_dominated_mask
from refiner_nas.search.records import count_evaluated
from refiner_nas.search.runner import work_on_study
from refiner_nas.search.samplers import worker_sampler
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace
from refiner_nas.search.stoppers import make_pruner
from refiner_nas.search.storages import open_storage, this_worker
from refiner_nas.search.storages._proxy import StorageProxy
from refiner_nas.search.study import StudyIndex, create_or_resume_study, load_existing_study
from refiner_nas.search.tabular import SHIPPED_TABLE, cached_table, table_settings
from refiner_nas.search.trial import TrialRunner

DEFAULT_TABLE = SHIPPED_TABLE
# The model field the load-test space adds to the table's; the table's curves do not depend on it.
REPLAYED_FIELD = "drop_path_rate"
_ADDED_DIMENSION = f"  {REPLAYED_FIELD}: {{float: {{low: 0.0, high: 0.1, step: 0.0001}}}}\n"
# How long PostgreSQL stays down in a fault run: a restart, which workers ride out (RetryingStorage).
RESTART_OUTAGE_S = 3.0
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class Ledger:
    """Exclusive seconds per category (storage, sampler) spent by this process's main thread."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self._inner: list[float] = []

    @contextmanager
    def charge(self, category: str) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        started = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.totals[category] += elapsed - self._inner.pop()
            if self._inner:
                self._inner[-1] += elapsed


class TimedStorage(StorageProxy):  # type: ignore[misc, valid-type]
    """A storage whose calls are charged to ``ledger`` as storage time."""

    def __init__(self, inner: optuna.storages.BaseStorage, ledger: Ledger) -> None:
        super().__init__(inner)
        self.ledger = ledger

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self.ledger.charge("storage"):
            return getattr(self.inner, name)(*args, **kwargs)


class TimedSampler(optuna.samplers.BaseSampler):
    """A sampler whose work (its storage reads excluded) is charged to ``ledger`` as sampler time."""

    def __init__(self, inner: optuna.samplers.BaseSampler, ledger: Ledger) -> None:
        self.inner, self.ledger = inner, ledger

    def _timed(self, name: str, *args: Any) -> Any:
        with self.ledger.charge("sampler"):
            return getattr(self.inner, name)(*args)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> Any:
        return self._timed("infer_relative_search_space", study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: Any) -> Any:
        return self._timed("sample_relative", study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: Any) -> Any:
        return self._timed("sample_independent", study, trial, name, distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._timed("before_trial", study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self._timed("after_trial", study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


@dataclass(frozen=True)
class ScalePlan:
    """One run: W workers on a new study until it holds ``trials`` evaluated architectures."""

    storage: str | None
    run_dir: Path
    workers: int
    trials: int
    sampler: str = "random"
    time_scale: float = 0.001
    heartbeat_s: int = SearchSettings().heartbeat_s
    prefill: int = 0
    faults: bool = False
    pgdata: str | None = None
    seed: int = 0
    table: Path = DEFAULT_TABLE
    study: str = field(default_factory=lambda: f"scale-{uuid.uuid4().hex[:8]}")

    def settings(self) -> SearchSettings:
        table = cached_table(str(self.table))
        space = write_load_test_space(table.provenance["space_yaml"], self.run_dir / self.study)
        return table_settings(table, self.table, space=str(space), storage=self.storage, run_dir=self.run_dir,
                              study=self.study, trials=self.trials, sampler=self.sampler, early_stop=False,
                              seed=self.seed, heartbeat_s=self.heartbeat_s)


def write_load_test_space(table_space_yaml: str, folder: Path) -> Path:
    """The table's space (its YAML) with ``REPLAYED_FIELD`` added as a 1001-value dimension, in ``folder``."""
    lines = table_space_yaml.splitlines(keepends=True)
    at = lines.index("dimensions:\n") + 1
    path = folder / "load_test_space.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines[:at] + [_ADDED_DIMENSION] + lines[at:]))
    return path


def replay_evaluator(plan: ScalePlan, settings: SearchSettings, space: SearchSpace) -> ArchitectureEvaluator:
    return table_evaluator(settings, space, replay_fields=(REPLAYED_FIELD,), time_scale=plan.time_scale)


@dataclass
class IterationTimes:
    """One worker's seconds per loop iteration (from one trial's start to the next one's)."""

    wall: list[float] = field(default_factory=list)
    storage: list[float] = field(default_factory=list)
    sampler: list[float] = field(default_factory=list)
    training: list[float] = field(default_factory=list)
    worker_cpu_s: list[float] = field(default_factory=list)  # each worker's CPU seconds, in all

    @property
    def harness(self) -> list[float]:
        """Seconds of each iteration outside storage, sampler and simulated training: the harness's own."""
        parts = zip(self.wall, self.storage, self.sampler, self.training, strict=True)
        return [wall - storage - sampler - training for wall, storage, sampler, training in parts]


class TimedRunner(TrialRunner):
    """A ``TrialRunner`` that cuts the worker's time into iterations at each trial start."""

    def __init__(self, evaluator: ArchitectureEvaluator, ledger: Ledger, time_scale: float, finished: Any) -> None:
        super().__init__(evaluator)
        self.ledger, self.time_scale, self.finished = ledger, time_scale, finished
        self.times = IterationTimes()
        self._previous: tuple[float, float, float] | None = None

    def __call__(self, trial: optuna.Trial) -> Sequence[float]:
        now = (time.perf_counter(), self.ledger.totals["storage"], self.ledger.totals["sampler"])
        if self._previous is not None:
            wall, storage, sampler = (a - b for a, b in zip(now, self._previous, strict=True))
            self.times.wall.append(wall)
            self.times.storage.append(storage)
            self.times.sampler.append(sampler)
            self.times.training.append(self._simulated_training())
        self._previous = now
        try:
            return super().__call__(trial)
        finally:
            with self.finished.get_lock():
                self.finished.value += 1

    def _simulated_training(self) -> float:
        """Seconds the previous trial slept (the table's training time, scaled)."""
        return 0.0 if self.last is None else (self.last.fields.get("train_time_s") or 0.0) * self.time_scale


def _work(plan: ScalePlan, target: int, joined: Any, go: Any, finished: Any, out_dir: str) -> None:
    """One worker process: join the study (then count itself in ``joined``), wait for ``go``, run trials
    until the study holds ``target`` evaluated architectures, save its timings."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    settings = plan.settings()
    space = SearchSpace.from_yaml(settings.space)
    ledger = Ledger()
    storage = TimedStorage(open_storage(settings.storage, settings.study_dir, create=False), ledger)
    worker = this_worker()
    sampler = TimedSampler(worker_sampler(settings, space, storage, worker), ledger)
    study = load_existing_study(settings, sampler=sampler, pruner=make_pruner(settings), storage=storage)
    with joined.get_lock():
        joined.value += 1
    go.wait()
    runner = TimedRunner(replay_evaluator(plan, settings, space), ledger, plan.time_scale, finished)
    work_on_study(study, runner, trials=target, heartbeat_s=settings.heartbeat_s, poll_s=0.05)
    runner.times.worker_cpu_s.append(time.process_time())
    Path(out_dir, f"{os.getpid()}.json").write_text(json.dumps(asdict(runner.times)))


def prefill_study(plan: ScalePlan, settings: SearchSettings, space: SearchSpace, study: optuna.Study) -> None:
    """Add ``plan.prefill`` finished trials (random architectures, replayed, real records) to ``study``."""
    scratch = optuna.create_study(directions=study.directions, sampler=optuna.samplers.RandomSampler(seed=plan.seed))
    no_sleep = dataclasses.replace(plan, time_scale=0.0)
    scratch.optimize(TrialRunner(replay_evaluator(no_sleep, settings, space)).__call__, n_trials=plan.prefill,
                     catch=(Exception,))
    study.add_trials(scratch.get_trials(deepcopy=False))


def _create_study(plan: ScalePlan, target: Any) -> None:
    """Create (and prefill) the study; ``target``: the evaluated architectures it must end with."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = plan.settings()
    space = SearchSpace.from_yaml(settings.space)
    study = create_or_resume_study(settings, space)
    if plan.prefill:
        prefill_study(plan, settings, space, study)
    target.value = StudyIndex().refresh(study).evaluated + plan.trials


@dataclass(frozen=True)
class FaultEvent:
    at_trials: int
    action: str  # "kill" or "restart-postgres"


def fault_schedule(plan: ScalePlan) -> list[FaultEvent]:
    """kill -9 of a random 10% of the workers (one at least) spread over 20-70% of the run; a PostgreSQL
    restart at half way when the server can be restarted."""
    if not plan.faults:
        return []
    kills = max(1, math.ceil(0.1 * plan.workers))
    shares = [0.2 + 0.5 * i / (kills - 1) for i in range(kills)] if kills > 1 else [0.45]
    events = [FaultEvent(int(plan.trials * share), "kill") for share in shares]
    if plan.pgdata and plan.storage and plan.storage.startswith("postgresql"):
        events.append(FaultEvent(plan.trials // 2, "restart-postgres"))
    return sorted(events, key=lambda event: event.at_trials)


@dataclass
class ScaleResult:
    plan: ScalePlan
    wall_s: float
    states: dict[str, int]
    statuses: dict[str, int]
    evaluated: int
    trials: int
    distinct: int
    left_unfinished: int
    fail_without_reason: int
    killed: int
    orphaned_trials: int  # failed because their worker died or was cut off
    orphaned_not_finished: int  # of those, architectures no trial finished
    values_differing_from_table: int
    front_matches: bool
    iterations: IterationTimes

    @property
    def trials_per_s(self) -> float:
        return self.trials / self.wall_s

    def share(self, part: list[float]) -> float:
        """Median share of an iteration spent in ``part``."""
        return statistics.median(p / w for p, w in zip(part, self.iterations.wall, strict=True) if w > 0)


def run_scale(plan: ScalePlan) -> ScaleResult:
    """Run ``plan`` (faults included) and check the final study."""
    context = multiprocessing.get_context("fork")
    target = context.Value("i", 0)
    creator = context.Process(target=_create_study, args=(plan, target))
    creator.start()
    creator.join()
    if creator.exitcode != 0:
        raise RuntimeError(f"creating the study failed (exit code {creator.exitcode})")
    _load_once(plan)
    rng = random.Random(plan.seed)
    events = fault_schedule(plan)
    joined, finished, go = context.Value("i", 0), context.Value("i", 0), context.Event()
    with tempfile.TemporaryDirectory() as out_dir:
        def start() -> multiprocessing.process.BaseProcess:
            process = context.Process(target=_work, args=(plan, target.value, joined, go, finished, out_dir),
                                      daemon=True)
            process.start()
            return process

        workers = [start() for _ in range(plan.workers)]
        # Forking 64 workers takes seconds: all start their first trial together, once all have joined.
        while joined.value < plan.workers and all(w.is_alive() for w in workers):
            time.sleep(0.05)
        started = time.perf_counter()
        go.set()
        # Opened once the first workers run; replacements forked later inherit its connection but never use it.
        watcher: optuna.Study | None = None
        killed = 0
        while any(w.is_alive() for w in workers):
            if events and finished.value >= events[0].at_trials:
                if events[0].action == "restart-postgres":
                    if joined.value < len(workers):  # a worker opening the storage now would fail to start
                        time.sleep(0.05)
                        continue
                    postgres_server(plan.pgdata, plan.storage, "stop")
                    time.sleep(RESTART_OUTAGE_S)
                    postgres_server(plan.pgdata, plan.storage, "start")
                    events.pop(0)
                else:
                    watcher = watcher or load_existing_study(plan.settings())
                    victim = _worker_in_training(watcher, workers, rng)
                    if victim is not None:
                        os.kill(victim.pid, signal.SIGKILL)
                        victim.join()
                        killed += 1
                        workers.append(start())
                        events.pop(0)
            time.sleep(0.05)
        wall = time.perf_counter() - started
        failed_workers = [w.exitcode for w in workers if w.exitcode not in (0, -signal.SIGKILL)]
        if failed_workers:
            raise RuntimeError(f"workers ended with exit codes {failed_workers}")
        times = IterationTimes()
        for report in Path(out_dir).glob("*.json"):
            for key, values in json.loads(report.read_text()).items():
                getattr(times, key).extend(values)
    return check_study(plan, wall, killed, times)


def _load_once(plan: ScalePlan) -> None:
    """Read the table and the dataset here, so forked workers start with them (a cluster's workers would
    have loaded them before their first trial too)."""
    settings = plan.settings()
    space = SearchSpace.from_yaml(settings.space)
    replay_evaluator(plan, settings, space).load_data(space.fixed["img_size"])


def _worker_in_training(study: optuna.Study, workers: list[multiprocessing.process.BaseProcess],
                        rng: random.Random) -> multiprocessing.process.BaseProcess | None:
    """A random one of ``workers`` whose trial has finished an epoch (None when none has yet)."""
    by_name = {f"{socket.gethostname()}:{w.pid}": w for w in workers if w.is_alive()}
    training = [by_name[t.user_attrs["worker"]] for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.user_attrs.get("top1_curve") and t.user_attrs.get("worker") in by_name]
    return rng.choice(training) if training else None


def check_study(plan: ScalePlan, wall_s: float, killed: int, times: IterationTimes) -> ScaleResult:
    """What the finished study holds: states, statuses, lost trials, and whether every recorded value and
    the front are those of the same architectures replayed without faults."""
    settings = plan.settings()
    space = SearchSpace.from_yaml(settings.space)
    study = load_existing_study(settings)
    trials = study.get_trials(deepcopy=False)[plan.prefill:]
    # Trials failed because their worker died or was cut off: each must be re-queued and finished, by a retry
    # (which reuses a result kept by a worker that was only cut off) or by a trial of the same architecture.
    orphaned = [t for t in trials
                if t.state == TrialState.FAIL and "its worker" in (t.user_attrs.get("fail_reason") or "")]
    ended = (TrialState.COMPLETE, TrialState.PRUNED)
    finished = {t.user_attrs.get("config_hash") for t in trials if t.state in ended} - {None}
    retries = {t.user_attrs["retry_of"]: t for t in trials if t.user_attrs.get("retry_of") is not None}

    def finished_by_retry(trial: FrozenTrial) -> bool:
        retry = retries.get(trial.number)
        while retry is not None and retry.state == TrialState.FAIL:
            retry = retries.get(retry.number)
        return retry is not None and retry.state in ended

    not_finished = sum(t.user_attrs.get("config_hash") not in finished and not finished_by_retry(t) for t in orphaned)
    evaluator = replay_evaluator(plan, settings, space)
    trainer = TableTrainer(cached_table(str(plan.table)), seed=settings.seed, replay_fields=(REPLAYED_FIELD,))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    recorded = [list(t.values) for t in complete]
    replayed = [truth(trainer, evaluator, space.config_from_params(t.params)) for t in complete]
    signs = [1.0 if d == optuna.study.StudyDirection.MINIMIZE else -1.0 for d in study.directions]
    return ScaleResult(
        plan=plan, wall_s=wall_s,
        states=dict(Counter(t.state.name for t in trials)),
        statuses=dict(Counter(t.user_attrs.get("status") for t in trials)),
        evaluated=count_evaluated(trials),
        trials=len(trials),
        distinct=len({t.user_attrs.get("config_hash") for t in trials}),
        left_unfinished=sum(t.state not in FINISHED_STATES for t in trials),
        fail_without_reason=sum(t.state == TrialState.FAIL and not t.user_attrs.get("fail_reason") for t in trials),
        killed=killed, orphaned_trials=len(orphaned), orphaned_not_finished=not_finished,
        values_differing_from_table=sum(r != t for r, t in zip(recorded, replayed, strict=True)),
        front_matches=_front(recorded, signs) == _front(replayed, signs),
        iterations=times,
    )


def truth(trainer: TableTrainer, evaluator: ArchitectureEvaluator, config: ModelConfig) -> list[float]:
    """The objective values of ``config`` read straight from the table, as a fault-free trial records them."""
    curve, _ = trainer.curve(config)
    costs = trainer.costs(config)
    latency_ms, throughput = trainer.speed(config)
    return evaluator.values(top1=curve[-1], measured={"params": costs.params / 1e6, "macs": costs.macs / 1e9,
                                                      "latency": latency_ms, "throughput": throughput})


def _front(values: list[list[float]], signs: list[float]) -> list[int]:
    """Indices of the non-dominated rows of ``values`` (each objective's direction in ``signs``)."""
    points = np.array(values, dtype=float).reshape(len(values), len(signs)) * np.array(signs)
    return np.flatnonzero(non_dominated_mask(points)).tolist() if len(values) else []


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def table_row(result: ScaleResult, storage_name: str) -> str:
    times = result.iterations

    def ms(values: list[float], share: float = 0.5) -> str:
        return f"{1000 * _percentile(values, share):.1f}"

    cpu_per_trial = sum(times.worker_cpu_s) / result.trials
    cells = [storage_name, result.plan.workers, result.plan.prefill, result.trials, f"{result.trials_per_s:.1f}",
             f"{1000 * cpu_per_trial:.0f}",
             ms(times.wall), f"{ms(times.storage)} / {ms(times.storage, 0.95)}",
             f"{100 * result.share(times.storage):.0f}%", f"{ms(times.sampler)} / {ms(times.sampler, 0.95)}",
             ms(times.harness), f"{result.distinct / result.trials:.2f}", result.left_unfinished,
             f"{result.killed} / {result.orphaned_trials} / {result.orphaned_not_finished}",
             result.values_differing_from_table, "yes" if result.front_matches else "NO"]
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


HEADER = ("| storage | workers | prefill | trials | trials/s | worker CPU ms per trial | iteration ms (median) | "
          "storage ms median / p95 | storage share | sampler ms median / p95 | harness ms (median) | "
          "distinct/trials | left running | killed workers / orphaned trials / not finished | values ≠ table | "
          "front = fault-free |\n" + "|---" * 16 + "|")


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=None, help="An Optuna URL (e.g. postgresql://...); default: a journal "
                                                         "file in a temporary run dir.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--trials", type=int, default=400, help="Evaluated architectures per run.")
    parser.add_argument("--prefill", type=int, nargs="+", default=[0],
                        help="Finished trials in the study before the workers start (study size).")
    parser.add_argument("--sampler", default="random", choices=("random", "tpe", "nsga2"))
    parser.add_argument("--time-scale", type=float, default=0.001,
                        help="Share of the table's training time a trial sleeps (0.001: ~85 ms a trial).")
    parser.add_argument("--faults", action="store_true", help="kill -9 10%% of the workers (and restart them); "
                                                               "restart PostgreSQL once (with --pgdata).")
    parser.add_argument("--pgdata", default=os.environ.get("REFINER_NAS_PGDATA"))
    parser.add_argument("--heartbeat", type=int, default=SearchSettings().heartbeat_s,
                        help="Seconds between a running trial's heartbeats (the launch's --heartbeat).")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage_name = "postgresql" if arguments.storage else "journal"
    print(HEADER, flush=True)
    for prefill in arguments.prefill:
        for workers in arguments.workers:
            with tempfile.TemporaryDirectory() as run_dir:
                plan = ScalePlan(storage=arguments.storage, run_dir=Path(run_dir), workers=workers,
                                 trials=arguments.trials, sampler=arguments.sampler, time_scale=arguments.time_scale,
                                 prefill=prefill, faults=arguments.faults, pgdata=arguments.pgdata,
                                 heartbeat_s=arguments.heartbeat, seed=arguments.seed)
                print(table_row(run_scale(plan), storage_name), flush=True)


if __name__ == "__main__":
    main()
