"""An exclusive lock between processes: an ``flock`` on a lock file, which the kernel releases when its
holder dies (kill -9 included), so no stale lock is ever left to break by hand."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``lock_file`` (created if absent); each call opens the file anew, so
    threads of one process exclude each other too.

    Raises:
        OSError: the lock file cannot be created or opened.
    """
    handle = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock
