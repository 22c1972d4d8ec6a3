"""Database storage calls that ride out a server restart or a network blip.

A worker must not lose a trial it is training because the database was away for a few seconds: every
storage call is retried with growing pauses for up to the patience (``storage_patience_s``: 90 s, or
the environment variable ``REFINER_NAS_STORAGE_PATIENCE``); only then does it fail, with one line naming
the storage. A retried call must not do twice what its first try did when only the answer was lost (the
server committed, then the connection dropped): a retried ``create_new_trial`` finds the trial its first
try made by a token written into it, and a retried finish or parameter write that the storage refuses
as already done is accepted when the stored value is the one asked for.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from refiner_nas.search.storages._proxy import StorageProxy

_logger = logging.getLogger("refiner_nas.storage")
# What a server restart or a dropped connection raises: Optuna wraps SQLAlchemy's errors in
# StorageInternalError; a few calls let SQLAlchemy's own through.
TRANSIENT_ERRORS = (StorageInternalError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
STORAGE_PATIENCE_S = 90.0
PATIENCE_VARIABLE = "REFINER_NAS_STORAGE_PATIENCE"
CREATE_TOKEN_KEY = "refiner_nas:create_token"
_NOT_DONE = object()  # what a ``done`` check returns when the earlier try did not take effect


class StorageUnavailableError(ConnectionError):
    """The storage stayed unreachable for longer than the patience."""


def storage_patience_s() -> float:
    """How long a database may stay unreachable before a worker gives up, in seconds:
    ``REFINER_NAS_STORAGE_PATIENCE`` when set, else ``STORAGE_PATIENCE_S``.

    Raises:
        ValueError: the variable is not a positive number of seconds.
    """
    text = os.environ.get(PATIENCE_VARIABLE)
    if text is None:
        return STORAGE_PATIENCE_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{PATIENCE_VARIABLE}={text!r} is not a positive number of seconds; set it to e.g. "
                         f"{STORAGE_PATIENCE_S:.0f} or unset it")
    return seconds


class Backoff:
    """Pauses of 0.25 s doubling up to 8 s, until ``patience_s`` is spent."""

    def __init__(self, patience_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.deadline, self.pause, self._sleep = time.monotonic() + patience_s, 0.25, sleep
        self.retries = 0

    def wait(self) -> float | None:
        """Sleep before the next try and return the pause; None (no sleep) when the patience is spent."""
        pause = self.pause
        if time.monotonic() + pause > self.deadline:
            return None
        self._sleep(pause)
        self.pause, self.retries = min(2 * pause, 8.0), self.retries + 1
        return pause


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class RetryingStorage(StorageProxy):  # type: ignore[misc, valid-type]
    """A storage whose operations are retried through transient database errors, without doing twice
    what a first try whose answer was lost did."""

    def __init__(self, inner: BaseStorage, *, where: str, patience_s: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(inner)
        self.where, self._sleep = where, sleep
        self.patience_s = storage_patience_s() if patience_s is None else patience_s
        self.recovered_at = 0.0  # wall time at which the storage last came back after an outage

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        token = uuid.uuid4().hex
        template = (optuna.trial.create_trial(state=TrialState.RUNNING) if template_trial is None
                    else copy.deepcopy(template_trial))
        template.system_attrs = {**template.system_attrs, CREATE_TOKEN_KEY: token}

        def made_by_first_try() -> Any:
            made = [t._trial_id for t in self.inner.get_all_trials(study_id, deepcopy=False)
                    if t.system_attrs.get(CREATE_TOKEN_KEY) == token]
            return made[0] if made else _NOT_DONE

        return self._retried("create_new_trial", (study_id, template), {}, made_by_first_try)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        def done() -> Any:
            trial = self.inner.get_trial(trial_id)
            same = trial.state == state and (values is None or list(trial.values or ()) == list(values))
            return True if same and state.is_finished() else _NOT_DONE

        return self._retried("set_trial_state_values", (trial_id, state, values), {}, done)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: Any) -> None:
        def done() -> Any:
            try:
                stored = self.inner.get_trial_param(trial_id, param_name)
            except KeyError:
                return _NOT_DONE
            return None if stored == param_value_internal else _NOT_DONE

        return self._retried("set_trial_param", (trial_id, param_name, param_value_internal, distribution), {}, done)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._retried(name, args, kwargs, None)

    def _retried(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 done: Callable[[], Any] | None) -> Any:
        """Call ``name`` until it answers; once a try failed, ``done`` (when given) says whether an earlier
        try took effect after all (its result, or ``_NOT_DONE``), before each try and when the storage
        refuses the call as a conflict."""
        backoff = Backoff(self.patience_s, self._sleep)
        while True:
            try:
                if backoff.retries and done is not None and (result := done()) is not _NOT_DONE:
                    return result
                result = getattr(self.inner, name)(*args, **kwargs)
                if backoff.retries:
                    self.recovered_at = time.time()
                    if result is False and done is not None and (earlier := done()) is not _NOT_DONE:
                        return earlier
                return result
            except (UpdateFinishedTrialError, sqlalchemy.exc.IntegrityError):
                if backoff.retries and done is not None and (result := done()) is not _NOT_DONE:
                    return result
                raise
            except TRANSIENT_ERRORS as error:
                pause = backoff.wait()
                if pause is None:
                    raise StorageUnavailableError(
                        f"storage {self.where} unreachable for {self.patience_s:.0f} s ({_reason(error)}); the "
                        "trials it recorded are kept: run the same command again once it is back"
                    ) from None
                _logger.warning("storage %s unreachable (%s); retrying in %.1f s", self.where,
                                type(error).__name__, pause)



def _reason(error: BaseException) -> str:
    """What went wrong: the database's own error behind Optuna's StorageInternalError, whose message
    blames invalid data for every failed commit."""
    cause = error.__cause__ if isinstance(error, StorageInternalError) else None
    return first_line(cause or error)


def recovered_at(storage: BaseStorage) -> float:
    """When ``storage`` (or the storage it wraps) last came back after an outage (0 if it never failed):
    heartbeats missed during an outage this worker saw too are no evidence that their workers died."""
    while not isinstance(storage, RetryingStorage) and isinstance(storage, StorageProxy):
        storage = storage.inner
    return getattr(storage, "recovered_at", 0.0)
