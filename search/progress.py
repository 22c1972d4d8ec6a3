"""A live view of a running search, read from its study: done/total, the current epoch, best, ETA.

It polls the storage from a background thread, so it shows the same thing whether the trials run in
this process or in worker processes.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from search.records import TrialRecord, count_evaluated


def describe_best(study: optuna.Study) -> str:
    """'best top1 93.1 (trial 4)' for one objective, 'Pareto front: 5 trials' for several."""
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        return "no completed trial yet"
    if len(study.directions) == 1:
        best = study.best_trial
        return f"best {best.value:.4g} (trial {best.number})"
    return f"Pareto front: {len(study.best_trials)} trials"


class SearchProgress:
    """Context manager showing the live progress of ``study`` towards ``total`` finished trials."""

    def __init__(self, study: optuna.Study, total: int, *, epochs: int, console: Console | None = None,
                 interval_s: float = 1.0) -> None:
        self.study, self.total, self.epochs, self.interval_s = study, total, epochs, interval_s
        self.started = time.perf_counter()
        self.finished_at_start = self._finished()
        self.progress = Progress(
            TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"), TextColumn("{task.fields[status]}"),
            console=console, transient=False,
        )
        self.task = self.progress.add_task("trials", total=total, eta="?", status="")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> SearchProgress:
        self.progress.start()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.refresh()
        self.progress.stop()

    def _finished(self) -> int:
        return count_evaluated(self.study.get_trials(deepcopy=False))

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception:  # a storage hiccup must not kill the display; the next poll retries
                continue

    def refresh(self) -> None:
        """Read the study once and update the display."""
        finished = self._finished()
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        current = ", ".join(
            f"trial {t.number} epoch {len(TrialRecord.from_trial(t).top1_curve)}/{self.epochs}" for t in running
        )
        done_here = finished - self.finished_at_start
        elapsed = time.perf_counter() - self.started
        remaining = max(self.total - finished, 0)
        eta = time.strftime("%M:%S", time.gmtime(elapsed / done_here * remaining)) if done_here else "?"
        failed = len(self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
        parts = [describe_best(self.study), f"{failed} failed" if failed else "", current]
        status = " | ".join(part for part in parts if part)
        self.progress.update(self.task, completed=min(finished, self.total), eta=eta, status=status)
