"""Opening a study's storage: a journal file in the run directory by default, or any Optuna URL."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage

from refiner_nas.search.storages._journal import SafeJournalFileBackend
from refiner_nas.search.storages._retry import RetryingStorage

JOURNAL_FILE = "journal.log"
# Any fixed number: PostgreSQL advisory lock that serialises schema creation by simultaneous workers.
_SCHEMA_LOCK_KEY = 726_173_101


class StorageError(ValueError):
    """A storage that cannot be opened; the message says which and what to check."""


def redact(url: str) -> str:
    """The URL with any password replaced, for messages and records."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_storage(url: str | None, run_dir: Path, *, create: bool = True) -> BaseStorage:
    """Open ``url`` (sqlite, postgresql, mysql, ``journal:///path``) or, when None, the journal file
    ``run_dir/journal.log``. Journals are checked (``refiner_nas.search.storages._journal``); database calls ride out
    restarts (``refiner_nas.search.storages._retry``). Liveness of trials is
    ``refiner_nas.search.storages._liveness``'s, on every
    storage alike. With ``create`` False (queries), a missing journal is an error, not a new file.

    Raises:
        StorageError: a folder that cannot be written, a missing journal, an unreachable database,
            wrong credentials.
        JournalDamagedError: a journal damaged before its last record.
    """
    if url is None or url.startswith("journal://"):
        path = run_dir / JOURNAL_FILE if url is None else Path(url.removeprefix("journal://"))
        if not create and not path.is_file():
            raise StorageError(f"no study journal at {path}; check --study, --storage and --run-dir")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        except OSError as error:
            raise StorageError(
                f"cannot write the study journal {path}: {error.strerror}; choose another --run-dir"
            ) from None
        return JournalStorage(SafeJournalFileBackend(path, repair=create))
    if not re.match(r"^[a-z0-9+]+://", url):
        raise StorageError(
            f"storage {url!r} is not a URL; use e.g. sqlite:///runs/study.db, "
            "postgresql://user:password@host/db or journal:///path/to/journal.log"
        )
    try:
        return RetryingStorage(optuna.storages.get_storage(_rdb_storage(url)), where=redact(url))
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


def _rdb_storage(url: str) -> RDBStorage:
    def create() -> RDBStorage:
        return RDBStorage(url, engine_kwargs={"pool_pre_ping": True})

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
