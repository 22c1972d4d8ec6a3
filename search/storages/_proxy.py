"""A storage that wraps another and sends every operation through one method, ``StorageProxy._call``.

Subclasses change what happens around each call (retry it through a database restart, time it) without
listing Optuna's storage operations again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.storages import BaseStorage


class _StorageProxyBase(BaseStorage):
    def __init__(self, inner: BaseStorage) -> None:
        self.inner = inner

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)

    def remove_session(self) -> None:
        self.inner.remove_session()


def _forwarded(name: str) -> Callable[..., Any]:
    def method(self: _StorageProxyBase, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    return method


# Every storage operation Optuna calls, the abstract ones and those with default implementations.
_OPERATIONS = [name for name in dir(BaseStorage) if not name.startswith("_") and name != "remove_session"]
StorageProxy = type(
    "StorageProxy",
    (_StorageProxyBase,),
    {"__doc__": "A storage forwarding every operation to ``inner`` through ``_call``.",
     **{name: _forwarded(name) for name in _OPERATIONS}},
)
