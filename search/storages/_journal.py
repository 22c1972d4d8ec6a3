"""The study journal file, kept readable through torn writes, full disks and damage.

Optuna's journal is one JSON record per line, appended under a lock file. A write cut short (a full
disk, a killed machine) leaves an incomplete last line; Optuna then refuses the file, and the next
append would glue a new record onto the fragment and damage it for good. Here:

- on open, and before an append that finds one (its writer was killed half-way), an incomplete last
  record is moved to a backup file and the journal continues with every complete record (a warning
  says what was set aside);
- a write that fails is undone (the file is cut back to its size before the write) and stops the
  launch with one line, so the journal stays readable;
- a journal damaged before its last record is never written to: opening it raises an error naming the
  file, the line and the byte.

Writers take a kernel lock (``flock`` on ``journal.log.flock``) instead of Optuna's lock file: waiters
wake as soon as it is free (Optuna's lock file is polled with pauses growing to 1 s, which made 4 workers
slower than 1), and a worker killed while holding it releases it at once (Optuna's is broken after 30 s).
Every process writing a journal must therefore be one of ours; readers (optuna-dashboard) take no lock.
An append is flushed to disk (``fsync``) when it starts or ends a trial or changes a study: the flush
covers every earlier record of the file too, so a finished trial is on disk whole when its worker goes
on, while the many per-epoch attribute writes of a running trial (which is re-queued if its machine
dies) cost no flush of their own.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Generator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._storage import JournalOperation

from refiner_nas.search.storages._lock import exclusive_lock

LOCK_SUFFIX = ".flock"
# Records whose loss on a machine crash would cost nothing once the trial is re-queued: no flush of their own.
_UNFLUSHED_OPERATIONS = frozenset({JournalOperation.SET_TRIAL_PARAM, JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE,
                                   JournalOperation.SET_TRIAL_USER_ATTR, JournalOperation.SET_TRIAL_SYSTEM_ATTR})


class JournalDamagedError(ValueError):
    """A journal with an unreadable record before its end; it is left untouched."""


class JournalWriteError(OSError):
    """A record that could not be appended (e.g. a full disk); the journal was restored."""


class TornJournalWarning(UserWarning):
    """An incomplete last record was set aside in a backup file."""


class SafeJournalFileBackend(JournalFileBackend):
    """Optuna's journal file whose failed appends are undone and whose read errors name the file."""

    def __init__(self, path: Path, *, repair: bool = True) -> None:
        """Open the journal ``path``; with ``repair``, set aside an incomplete last record, else (queries,
        which never write) only check it: Optuna's reader skips such a record."""
        self.path = path
        super().__init__(str(path))
        if not repair:
            check_journal(path)
            return
        with journal_lock(path):  # no writer can be half-way through a record while we look
            repair_torn_tail(path)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        flush = any(log.get("op_code") not in _UNFLUSHED_OPERATIONS for log in logs)
        with journal_lock(self.path):
            journal = os.open(self.path, os.O_RDWR | os.O_APPEND)
            size = os.lseek(journal, 0, os.SEEK_END)
            if size and os.pread(journal, 1, size - 1) != b"\n":  # a writer killed half-way through a record
                repair_torn_tail(self.path)
                size = os.lseek(journal, 0, os.SEEK_END)
            try:
                written = 0
                while written < len(text):  # unbuffered: nothing is left to be flushed again on close
                    written += os.write(journal, text[written:])
                if flush:
                    os.fsync(journal)
            except OSError as error:
                os.ftruncate(journal, size)
                raise JournalWriteError(
                    f"cannot write to the study journal {self.path}: {error.strerror}; nothing was lost "
                    "(the journal is intact); free space on its disk and run the same command again",
                ) from None
            finally:
                os.close(journal)

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        try:
            yield from super().read_logs(log_number_from)
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError: damaged after it was opened
            raise JournalDamagedError(
                f"study journal {self.path} cannot be read ({type(error).__name__}: {error}); it was left as it "
                "is: restore it from a backup, or use a new --study or --run-dir"
            ) from None


def journal_lock(path: Path) -> AbstractContextManager[None]:
    """The exclusive write lock of the journal ``path`` (an ``flock`` on a file beside it)."""
    return exclusive_lock(Path(f"{path}{LOCK_SUFFIX}"))


def check_journal(path: Path) -> int | None:
    """Check every complete record of the journal ``path`` without changing it; returns the byte offset of
    an incomplete last record (a write cut short), or None when the journal ends whole.

    Raises:
        JournalDamagedError: a complete record does not decode (names the file, the line and the byte).
    """
    data = path.read_bytes()
    offset = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], start=1):
        problem = _record_problem(line)
        if problem is not None:
            raise JournalDamagedError(
                f"study journal {path} is damaged at line {number} (byte {offset}): {problem}; it was left as it "
                "is: restore it from a copy, or delete the study (refiner-nas search delete)"
            )
        offset += len(line) + 1
    return offset if lines[-1] else None


def repair_torn_tail(path: Path) -> Path | None:
    """Check the journal ``path`` (``check_journal``) and move an incomplete last record to a backup
    file. Returns the backup file, or None when the journal was whole. Call under the journal's lock.

    Raises:
        JournalDamagedError: a record before the last one does not decode; nothing is changed.
        JournalWriteError: the backup cannot be written (a full disk); nothing is changed.
    """
    offset = check_journal(path)
    if offset is None:
        return None
    tail = path.read_bytes()[offset:]
    if _record_problem(tail) is None:  # whole, only its newline was cut: keep it
        with open(path, "ab") as journal:
            journal.write(b"\n")
            os.fsync(journal.fileno())
        return None
    backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        backup.write_bytes(tail)
    except OSError as error:
        backup.unlink(missing_ok=True)
        raise JournalWriteError(
            f"cannot set aside the incomplete last record of the study journal {path} in {backup}: "
            f"{error.strerror}; free space on its disk and run the same command again",
        ) from None
    with open(path, "r+b") as journal:
        journal.truncate(offset)
        os.fsync(journal.fileno())
    warnings.warn(
        f"study journal {path}: an incomplete last record ({len(tail)} bytes at byte {offset}, from a write cut "
        f"short) was set aside in {backup}; the study continues with every complete record",
        TornJournalWarning,
        stacklevel=2,
    )
    return backup


def _record_problem(line: bytes) -> str | None:
    """What is wrong with one journal line, or None for a record."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"byte 0x{line[error.start]:02x} at {error.start} in the line is not UTF-8 text"
    try:
        return None if isinstance(json.loads(text), dict) else "not a journal record"
    except ValueError:
        return "not a journal record"
