"""Opening a study's storage: a journal file in the run directory by default, or any Optuna URL."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

JOURNAL_FILE = "journal.log"
# Heartbeats let another worker re-queue the trial of a worker that died (RDB storages only): a running
# trial whose worker has not beaten for 3 intervals is failed and enqueued again, twice at most.
HEARTBEAT_INTERVAL_S = 20
RETRIES_OF_A_DEAD_WORKER_TRIAL = 2
# Any fixed number: PostgreSQL advisory lock that serialises schema creation by simultaneous workers.
_SCHEMA_LOCK_KEY = 726_173_101


class StorageError(ValueError):
    """A storage that cannot be opened; the message says which and what to check."""


def redact(url: str) -> str:
    """The URL with any password replaced, for messages and records."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_storage(url: str | None, run_dir: Path, *, heartbeat_s: int = HEARTBEAT_INTERVAL_S) -> BaseStorage:
    """Open ``url`` (sqlite, postgresql, mysql, ``journal:///path``) or, when None, the journal file
    ``run_dir/journal.log`` (created with its folder). Database storages get heartbeats every
    ``heartbeat_s`` seconds, and the trials of workers that died are retried.

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
            return _rdb_storage(url, heartbeat_s)
    except ImportError as error:
        raise StorageError(
            f"storage {redact(url)} needs a database driver ({error}); e.g. pip install 'psycopg[binary]'"
        ) from None
    except Exception as error:  # sqlalchemy raises many types for the same problem: unreachable or refused
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StorageError(
            f"cannot open storage {redact(url)}: {reason}; check that the server is running and reachable "
            "and that the user, password and database name are right"
        ) from None


def _rdb_storage(url: str, heartbeat_s: int) -> RDBStorage:
    def create() -> RDBStorage:
        return RDBStorage(
            url,
            heartbeat_interval=heartbeat_s,
            grace_period=3 * heartbeat_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=RETRIES_OF_A_DEAD_WORKER_TRIAL
            ),
            engine_kwargs={"pool_pre_ping": True},
        )

    if not url.startswith("postgresql"):
        return create()
    # Workers started together would race to create the schema; one at a time, the others find it made.
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"SELECT pg_advisory_lock({_SCHEMA_LOCK_KEY})"))
            try:
                return create()
            finally:
                connection.execute(sqlalchemy.text(f"SELECT pg_advisory_unlock({_SCHEMA_LOCK_KEY})"))
    finally:
        engine.dispose()
