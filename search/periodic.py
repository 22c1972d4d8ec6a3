"""A function run now and then every few seconds on a background thread, for as long as a ``with`` lasts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType


class Periodic:
    """Context manager: calls ``action()`` on entry, then every ``interval_s`` from a daemon thread, and
    once more on exit when ``final`` is set. ``action`` handles its own errors: the thread must not die."""

    def __init__(self, action: Callable[[], None], interval_s: float, *, name: str, final: bool = False) -> None:
        self.action, self.interval_s, self.final = action, interval_s, final
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Periodic:
        self.action()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stopped.set()
        self._thread.join()
        if self.final:
            self.action()

    def _run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self.action()
