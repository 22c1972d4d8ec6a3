"""Counted costs kept by architecture, so a search never counts the same configuration twice.

The key is the configuration hash, the input size and whether the refiner was folded. A cache lives in
memory, and optionally also in a JSON-lines file that several processes (search workers) append to.
A count that failed (an operator without a counting rule) is kept as a failure and raised again, not
retried.

File schema (one JSON object per line): ``{"schema_version": 1, "key": "<hash>:<h>x<w>:<fold>[:<counter version>]",
"costs": {...Costs.to_dict()...}}`` or ``{"schema_version": 1, "key": ..., "error": "<message>"}``.
Lines with another schema version are ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from refiner_nas.refiner_space import ModelConfig
    from refiner_nas.refiner_space.costs._costs import Costs

SCHEMA_VERSION = 1


class CachedCountError(ValueError):
    """An earlier count of this architecture failed; the message is that failure's."""


def counter_version() -> str:
    """A short hash of what a count depends on besides the configuration: the counting and model code
    and the torch and fvcore versions. A persistent cache keys on it, so a changed counter never reads
    an old count (``bench regress`` keeps checking the code, not the cache)."""
    from importlib.metadata import version

    digest = hashlib.sha256(f"torch {version('torch')} fvcore {version('fvcore')}".encode())
    model_package = Path(__file__).resolve().parents[1]  # the counter (costs/) and the model code
    for path in sorted(model_package.glob("**/*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def user_cache_file() -> Path:
    """``$REFINER_NAS_CACHE_DIR/costs.jsonl``, by default under ``$XDG_CACHE_HOME`` (``~/.cache``)."""
    base = os.environ.get("REFINER_NAS_CACHE_DIR")
    if base is None:
        base = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "refiner-nas")
    return Path(base) / "costs.jsonl"


class CostCache:
    """Costs by (configuration hash, input size, refiner fold); ``path`` adds a shared JSON-lines file,
    whose keys also hold ``version`` (see ``counter_version``)."""

    def __init__(self, *, path: str | Path | None = None, version: str = "") -> None:
        self.path = Path(path) if path is not None else None
        self.version = version
        self._entries: dict[str, Costs | str] = {}
        self._lock = threading.Lock()
        self._file_size = 0
        self.counted = 0  # counts run by this cache (misses), for tests and reports

    def persist(self, path: str | Path, version: str) -> None:
        """Also keep the counts in ``path`` (read now and appended to), under counter ``version``."""
        with self._lock:
            self.path, self.version, self._file_size = Path(path), version, 0

    def key(self, config: ModelConfig, refiner_fold: bool) -> str:
        height, width = config.img_hw
        key = f"{config.config_hash()}:{height}x{width}:{'folded' if refiner_fold else 'unfolded'}"
        return f"{key}:{self.version}" if self.version else key

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget the in-memory entries (the file, if any, is kept and read again on the next lookup)."""
        with self._lock:
            self._entries.clear()
            self._file_size = 0

    def get_or_count(self, config: ModelConfig, refiner_fold: bool, count: Callable[[], Costs]) -> Costs:
        """The cached costs of ``config``, counting them with ``count()`` on a miss.

        Raises:
            CachedCountError: an earlier count of this key failed.
        """
        from refiner_nas.refiner_space.costs._costs import UncountedOperatorError

        key = self.key(config, refiner_fold)
        with self._lock:
            self._read_file()
            entry = self._entries.get(key)
        if entry is None:
            try:
                entry = count()
            except UncountedOperatorError as error:
                self._store(key, str(error))
                raise
            self._store(key, entry)
        if isinstance(entry, str):
            raise CachedCountError(entry)
        return entry

    def _store(self, key: str, entry: Costs | str) -> None:
        with self._lock:
            self.counted += 1
            self._entries[key] = entry
            if self.path is None:
                return
            record: dict[str, object] = {"schema_version": SCHEMA_VERSION, "key": key}
            if isinstance(entry, str):
                record["error"] = entry
            else:
                record["costs"] = entry.to_dict()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as file:
                file.write(json.dumps(record, sort_keys=True) + "\n")

    def _read_file(self) -> None:
        # Read only what other processes appended since the last look.
        if self.path is None or not self.path.exists():
            return
        from refiner_nas.refiner_space.costs._costs import Costs

        with self.path.open("rb") as file:
            file.seek(self._file_size)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
        self._file_size += len(complete)
        for line in complete.decode().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("schema_version") != SCHEMA_VERSION or "key" not in record:
                continue
            if "costs" in record:
                self._entries[record["key"]] = Costs.from_dict(record["costs"])
            elif "error" in record:
                self._entries[record["key"]] = record["error"]


DEFAULT_CACHE = CostCache()
"""The in-memory cache ``refiner_nas.refiner_space.costs._count.count_costs`` uses unless told otherwise."""
