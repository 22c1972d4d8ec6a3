"""Where a study lives and how it survives faults: the journal file (``_journal``), database URLs
with retries (``_retry``, ``_proxy``), opening either (``_open``) and the liveness of running trials
(``_liveness``), and the inter-process lock both files and the results store use (``_lock``).
"""

from refiner_nas.search.storages._journal import (
    LOCK_SUFFIX,
    JournalDamagedError,
    JournalWriteError,
    SafeJournalFileBackend,
    TornJournalWarning,
    check_journal,
    journal_lock,
    repair_torn_tail,
)
from refiner_nas.search.storages._liveness import (
    HEARTBEAT_KEY,
    MISSED_BEATS,
    RETRIES_OF_A_DEAD_WORKER_TRIAL,
    DeadTrial,
    Heartbeat,
    TrialTakenOver,
    dead_trials,
    fail_and_requeue,
    requeue_interrupted,
    retry_depth,
    this_worker,
    worker_alive,
)
from refiner_nas.search.storages._lock import exclusive_lock
from refiner_nas.search.storages._open import JOURNAL_FILE, StorageError, open_storage, redact
from refiner_nas.search.storages._retry import (
    STORAGE_PATIENCE_S,
    TRANSIENT_ERRORS,
    RetryingStorage,
    StorageUnavailableError,
    recovered_at,
)

__all__ = [
    "DeadTrial",
    "HEARTBEAT_KEY",
    "Heartbeat",
    "JOURNAL_FILE",
    "JournalDamagedError",
    "JournalWriteError",
    "LOCK_SUFFIX",
    "MISSED_BEATS",
    "RETRIES_OF_A_DEAD_WORKER_TRIAL",
    "RetryingStorage",
    "STORAGE_PATIENCE_S",
    "SafeJournalFileBackend",
    "StorageError",
    "StorageUnavailableError",
    "TRANSIENT_ERRORS",
    "TornJournalWarning",
    "TrialTakenOver",
    "check_journal",
    "dead_trials",
    "exclusive_lock",
    "fail_and_requeue",
    "journal_lock",
    "open_storage",
    "recovered_at",
    "redact",
    "repair_torn_tail",
    "requeue_interrupted",
    "retry_depth",
    "this_worker",
    "worker_alive",
]
