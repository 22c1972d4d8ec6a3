"""Database storage calls that ride out a server restart or a network blip.

A worker must not lose a trial it is training because the database was away for a few seconds: every
storage call is retried with growing pauses for up to ``patience_s``; only then does it fail, with one
line naming the storage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
from optuna.exceptions import StorageInternalError
from optuna.storages import BaseStorage

from refiner_nas.search.storages._proxy import StorageProxy

_logger = logging.getLogger("refiner_nas.storage")
# What a server restart or a dropped connection raises: Optuna wraps SQLAlchemy's errors in
# StorageInternalError; a few calls let SQLAlchemy's own through.
TRANSIENT_ERRORS = (StorageInternalError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
STORAGE_PATIENCE_S = 90.0


class StorageUnavailableError(ConnectionError):
    """The storage stayed unreachable for longer than the patience."""


class RetryingStorage(StorageProxy):  # type: ignore[misc, valid-type]
    """A storage whose operations are retried through transient database errors."""

    def __init__(self, inner: BaseStorage, *, where: str, patience_s: float = STORAGE_PATIENCE_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(inner)
        self.where, self.patience_s, self._sleep = where, patience_s, sleep
        self.recovered_at = 0.0  # wall time at which the storage last came back after an outage

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.patience_s
        pause = 0.25
        while True:
            try:
                result = getattr(self.inner, name)(*args, **kwargs)
                if pause > 0.25:
                    self.recovered_at = time.time()
                return result
            except TRANSIENT_ERRORS as error:
                if time.monotonic() + pause > deadline:
                    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                    raise StorageUnavailableError(
                        f"storage {self.where} unreachable for {self.patience_s:.0f} s ({reason}); the trials it "
                        "recorded are kept: run the same command again once it is back"
                    ) from None
                _logger.warning("storage %s unreachable (%s); retrying in %.1f s", self.where,
                                type(error).__name__, pause)
                self._sleep(pause)
                pause = min(2 * pause, 8.0)


def recovered_at(storage: BaseStorage) -> float:
    """When ``storage`` (or the storage it wraps) last came back after an outage (0 if it never failed):
    heartbeats missed during an outage this worker saw too are no evidence that their workers died."""
    while not isinstance(storage, RetryingStorage) and isinstance(storage, StorageProxy):
        storage = storage.inner
    return getattr(storage, "recovered_at", 0.0)
