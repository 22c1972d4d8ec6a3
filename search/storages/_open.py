"""Opening a study's storage: a journal file in the run directory by default, or any Optuna URL."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage

from refiner_nas.search.storages._journal import SafeJournalFileBackend
from refiner_nas.search.storages._retry import Backoff, RetryingStorage, first_line, storage_patience_s

JOURNAL_FILE = "journal.log"
_SUPPORTED = ("journal:///path/to/journal.log, sqlite:///path/to/study.db, postgresql://user:password@host/db or "
              "mysql://user:password@host/db")
# The pip package of each SQLAlchemy driver name (the driver of a URL such as mysql+pymysql://).
_DRIVER_PACKAGES = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "mysqldb": "mysqlclient",
                    "pymysql": "pymysql", "mysqlconnector": "mysql-connector-python"}
# What a server that is down or restarting answers (PostgreSQL, MySQL); worth waiting for.
_NOT_UP = re.compile(r"connection refused|can't connect to mysql server|the database system is (starting up|"
                     r"shutting down|in recovery mode)", re.IGNORECASE)
_logger = logging.getLogger("refiner_nas.storage")
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
        raise StorageError(f"storage {url!r} is not a URL; use e.g. {_SUPPORTED}")
    dialect, patience_s = _dialect(url), storage_patience_s()
    try:
        storage = optuna.storages.get_storage(_first_connection(url, patience_s))
        return RetryingStorage(storage, where=redact(url), patience_s=patience_s)
    except ImportError:
        package = _DRIVER_PACKAGES.get(dialect.driver, dialect.driver)
        raise StorageError(
            f"storage {redact(url)} needs the {dialect.name} driver {dialect.driver}, which is not installed; "
            f"pip install {package}"
        ) from None
    except Exception as error:  # sqlalchemy raises many types for the same problem: unreachable or refused
        if dialect.name == "sqlite":
            fix = ("SQLite takes one process at a time: stop the other one, or use postgresql://user:password@host/db"
                   if "locked" in str(error) else "check that its folder exists and that you may write there")
            raise StorageError(f"cannot open the SQLite database of {url}: {first_line(error)}; {fix}") from None
        raise StorageError(
            f"cannot open storage {redact(url)}: {first_line(error)}; check that the server is running and reachable "
            "and that the user, password and database name are right"
        ) from None


def _dialect(url: str) -> Any:
    """The SQLAlchemy dialect class of ``url`` (its ``name`` and ``driver``), without importing the driver.

    Raises:
        StorageError: a scheme SQLAlchemy has no dialect for (lists the supported ones).
    """
    try:
        return sqlalchemy.engine.make_url(url).get_dialect()
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError):
        scheme = url.split("://", 1)[0]
        raise StorageError(f"storage {redact(url)}: unknown scheme {scheme}://; use {_SUPPORTED}") from None


def _first_connection(url: str, patience_s: float) -> RDBStorage:
    """Open the database, waiting out a server that refuses connections (restarting, not yet up) for up
    to ``patience_s``; bad credentials or a missing database fail at once."""
    backoff = Backoff(patience_s)
    while True:
        try:
            return _rdb_storage(url)
        except sqlalchemy.exc.OperationalError as error:
            if not _NOT_UP.search(str(error)) or (pause := backoff.wait()) is None:
                raise
            _logger.warning("storage %s not up (%s); retrying in %.1f s", redact(url), first_line(error), pause)


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
