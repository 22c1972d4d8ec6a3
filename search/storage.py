"""Opening a study's storage: a journal file in the run directory by default, or any Optuna URL."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

JOURNAL_FILE = "journal.log"
# Heartbeats let another worker re-queue the trial of a worker that died (RDB storages only).
HEARTBEAT_INTERVAL_S = 20
HEARTBEAT_GRACE_S = 60


class StorageError(ValueError):
    """A storage that cannot be opened; the message says which and what to check."""


def redact(url: str) -> str:
    """The URL with any password replaced, for messages and records."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_storage(url: str | None, run_dir: Path) -> BaseStorage:
    """Open ``url`` (sqlite, postgresql, mysql, ``journal:///path``) or, when None, the journal file
    ``run_dir/journal.log`` (created with its folder).

    Raises:
        StorageError: a folder that cannot be written, an unreachable database, wrong credentials.
    """
    if url is None or url.startswith("journal://"):
        path = run_dir / JOURNAL_FILE if url is None else Path(url.removeprefix("journal://"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        except OSError as error:
            raise StorageError(
                f"cannot write the study journal {path}: {error.strerror}; choose another --run-dir"
            ) from None
        return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    if not re.match(r"^[a-z0-9+]+://", url):
        raise StorageError(
            f"storage {url!r} is not a URL; use e.g. sqlite:///runs/study.db, "
            "postgresql://user:password@host/db or journal:///path/to/journal.log"
        )
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _rdb_storage(url)
    except ImportError as error:
        raise StorageError(
            f"storage {redact(url)} needs a database driver ({error}); e.g. pip install psycopg2-binary"
        ) from None
    except Exception as error:  # sqlalchemy raises many types for the same problem: unreachable or refused
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StorageError(
            f"cannot open storage {redact(url)}: {reason}; check that the server is running and reachable "
            "and that the user, password and database name are right"
        ) from None


def _rdb_storage(url: str) -> RDBStorage:
    return RDBStorage(
        url,
        heartbeat_interval=HEARTBEAT_INTERVAL_S,
        grace_period=HEARTBEAT_GRACE_S,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
        engine_kwargs={"pool_pre_ping": True},
    )
