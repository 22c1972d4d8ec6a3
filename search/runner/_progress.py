"""A live view of a running search, read from its study: trials done, epochs in flight, the best, an ETA.

It polls the storage from a background thread, so it shows the same thing whether the trials run in
this process, in worker processes or on Ray. Work is counted in epochs, so the bar and the ETA move
inside a trial and inside an epoch (from the measured seconds per epoch), and trials that take no
training (duplicates, over budget) do not distort the estimate. In a terminal the bar and its counts
take one line and the status the lines below it, wrapped to the width (80 columns cut a single line to
``…``); when the output is not a terminal (a cluster job's log) it prints one plain line per finished trial.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich import get_console
from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from refiner_nas.search.periodic import Periodic
from refiner_nas.search.records import TrialRecord, count_evaluated
from refiner_nas.search.study import objective_names, study_front

_UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)

# An epoch in flight counts at most this share of its estimate: it is not done until it is recorded.
_IN_EPOCH_CAP = 0.95


@dataclass(frozen=True)
class RunningTrial:
    """A trial in flight: its number, epochs recorded and seconds since its last recorded epoch."""

    number: int
    epochs_done: int
    epoch_elapsed_s: float


@dataclass(frozen=True)
class WorkEstimate:
    """Epochs of work done and in total (fractions inside an epoch), and seconds left (None: unknown)."""

    done: float
    total: float
    eta_s: float | None


def seconds_per_epoch(records: Iterable[Mapping[str, Any]]) -> float | None:
    """Training seconds per epoch measured so far (trained and running trials); None before the first epoch.
    ``records``: trials' record fields, read as written (validated then; the display reads them every second)."""
    timed = [(r["epochs_run"], r["train_time_s"]) for r in records if r.get("epochs_run") and r.get("train_time_s")]
    epochs = sum(epochs_run for epochs_run, _ in timed)
    return sum(seconds for _, seconds in timed) / epochs if epochs else None


def estimate_work(*, total_trials: int, finished: int, running: list[RunningTrial], epochs: int,
                  epoch_s: float | None) -> WorkEstimate:
    """Work of a search counted in epochs: each finished trial is ``epochs``, a running one its recorded
    epochs plus the elapsed share of the current one. The ETA assumes every trial still to start trains
    all its epochs, and that the trials in flight run in parallel (as many as are running now)."""
    in_epoch = [0.0 if epoch_s is None else min(t.epoch_elapsed_s / epoch_s, _IN_EPOCH_CAP) for t in running]
    done = finished * epochs + sum(t.epochs_done + share for t, share in zip(running, in_epoch, strict=True))
    total = max(total_trials, finished + len(running)) * epochs
    if epoch_s is None:
        return WorkEstimate(done=min(done, total), total=total, eta_s=None)
    eta = max(total - done, 0.0) * epoch_s / max(len(running), 1)
    return WorkEstimate(done=min(done, total), total=total, eta_s=eta)


def describe_best(study: optuna.Study) -> str:
    """'best 93.1 (trial 4)' for one objective, 'Pareto front: 5 trials' for several: the same front as
    the summary printed at the end (``refiner_nas.search.study._summary.study_front``, duplicates left out)."""
    front = study_front(study)
    if front.empty:
        return "no completed trial yet"
    if len(study.directions) == 1:
        top = front.iloc[0]
        return f"best {top.iloc[1]:.4g} (trial {top['trial']})"
    return f"Pareto front: {len(front)} trials"


def finished_trial_line(trial: FrozenTrial, objectives: list[str]) -> str:
    """One plain line for a finished trial: number, state and record status, objectives, epochs and duration,
    e.g. ``trial 3 complete (trained): top1 81.23, params 0.04131; 5 epochs in 00:12``."""
    record = TrialRecord.from_trial(trial)
    status = record.status if record.duplicate_of is None else f"duplicate of trial {record.duplicate_of}"
    if record.fail_reason:
        status += f": {record.fail_reason}"
    values = ", ".join(f"{name} {value:.4g}" for name, value in zip(objectives, trial.values or (), strict=False))
    seconds = trial.duration.total_seconds() if trial.duration is not None else (record.wall_time_s or 0.0)
    return (f"trial {trial.number} {trial.state.name.lower()} ({status}): {values or 'no values'}; "
            f"{record.epochs_run} epochs in {_clock(seconds)}")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class _BarAndStatus(Progress):
    """The bar and its counts on one line, each task's status below it (wrapped, never cut)."""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            if task.fields.get("status"):
                yield Text(task.fields["status"])


class SearchProgress:
    """Context manager showing the live progress of ``study`` towards ``total`` finished trials (in a
    terminal), or printing a line per trial finished while it lasts (otherwise)."""

    def __init__(self, study: optuna.Study, total: int, *, epochs: int, console: Console | None = None,
                 interval_s: float = 1.0) -> None:
        self.study, self.total, self.epochs, self.interval_s = study, total, epochs, interval_s
        self.console = console or get_console()
        self.live = self.console.is_terminal
        self._epoch_seen: dict[int, tuple[int, float]] = {}  # trial -> (epochs recorded, when first seen so)
        self._best: tuple[int, str] = (-1, "")  # (completed trials, describe_best) as of the last change
        self._reported: set[int] = set()  # finished trials already printed (or finished before the display)
        self.progress = _BarAndStatus(
            TextColumn("[bold]{task.fields[trials]}"), BarColumn(bar_width=None), TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"), console=self.console, transient=False,
        )
        self.task = self.progress.add_task("search", total=total * epochs, trials="", eta="?", status="")
        self._poller = Periodic(self._poll, interval_s, name="search-progress", final=True)

    def __enter__(self) -> SearchProgress:
        self._reported = {t.number for t in self.study.get_trials(deepcopy=False) if t.state not in _UNFINISHED}
        if self.live:
            self.progress.start()
        self._poller.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._poller.__exit__(kind, error, traceback)
        if self.live:
            self.progress.stop()

    def _poll(self) -> None:
        try:
            self.refresh()
        except Exception:  # a storage hiccup must not kill the display; the next poll retries
            pass

    def _running(self, trials: list[optuna.trial.FrozenTrial], now: float) -> list[RunningTrial]:
        running = []
        for trial in trials:
            done = len(trial.user_attrs.get("top1_curve") or ())
            seen = self._epoch_seen.get(trial.number)
            if seen is None or seen[0] != done:
                seen = self._epoch_seen[trial.number] = (done, now)
            running.append(RunningTrial(trial.number, done, now - seen[1]))
        return running

    def _describe_best(self, trials: list[optuna.trial.FrozenTrial]) -> str:
        """``describe_best``, computed again only when a trial completed (it costs a Pareto front)."""
        completed = sum(t.state == TrialState.COMPLETE for t in trials)
        if completed != self._best[0]:
            self._best = (completed, describe_best(self.study))
        return self._best[1]

    def _print_finished(self, trials: list[FrozenTrial]) -> None:
        objectives = None
        for trial in trials:
            if trial.state in _UNFINISHED or trial.number in self._reported:
                continue
            objectives = objectives or objective_names(self.study)
            self.console.print(finished_trial_line(trial, objectives), markup=False, highlight=False, soft_wrap=True)
            self._reported.add(trial.number)

    def refresh(self) -> None:
        """Read the study once and update the display (or print the trials finished since the last read)."""
        now = time.monotonic()
        trials = self.study.get_trials(deepcopy=False)
        if not self.live:
            self._print_finished(trials)
        finished = count_evaluated(trials)  # what --trials counts: duplicates and failures do not
        failed = sum(t.state == TrialState.FAIL for t in trials)
        running = self._running([t for t in trials if t.state == TrialState.RUNNING], now)
        epoch_s = seconds_per_epoch(t.user_attrs for t in trials)
        work = estimate_work(total_trials=self.total, finished=finished, running=running, epochs=self.epochs,
                             epoch_s=epoch_s)
        current = ", ".join(
            f"trial {t.number} epoch {min(t.epochs_done + 1, self.epochs)}/{self.epochs} ({_clock(t.epoch_elapsed_s)})"
            for t in running
        )
        parts = [self._describe_best(trials), f"{failed} failed" if failed else "", current]
        eta = "?" if work.eta_s is None else _clock(work.eta_s)
        if work.eta_s is None and running:
            eta = "? (first epoch)"
        self.progress.update(self.task, completed=work.done, total=work.total,
                             trials=f"trials {min(finished, self.total)}/{self.total}", eta=eta,
                             status=" | ".join(part for part in parts if part))
