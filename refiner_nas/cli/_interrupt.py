"""How Ctrl-C ends the command line outside a command's own handling: one line and exit 130, no traceback.

Light on purpose (the standard library only): the entry point imports it before anything else.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

INTERRUPTED = "interrupted (SIGINT): what was recorded is kept; run the same command again to continue"
# 128 + SIGINT: what shells report for a program ended by Ctrl-C.
INTERRUPTED_CODE = 130


def exit_interrupted() -> NoReturn:
    """Print the one line and exit 130 (``KeyboardInterrupt`` caught where nothing is left to clean up)."""
    sys.stderr.write(f"error: {INTERRUPTED}\n")
    sys.exit(INTERRUPTED_CODE)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    sys.stderr.write(f"error: {INTERRUPTED}\n")
    sys.stderr.flush()
    os._exit(INTERRUPTED_CODE)


@contextmanager
def exit_at_once_on_interrupt() -> Iterator[None]:
    """While the command line imports its modules, Ctrl-C exits at once instead of raising
    ``KeyboardInterrupt``: raised inside torch's or torchvision's import it can surface as another error
    (seen: an ``ImportError`` over a ``RecursionError``) and a traceback. Nothing is recorded yet, so there
    is nothing to clean up. Where SIGINT is ignored (a background job) it stays ignored."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, _exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
