"""A thread-safe LRU bounded by the memory of its values (loaded samples, cached components)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable

import numpy as np


def nbytes_of(obj: Any, _depth: int = 0) -> int:
    """Approximate memory held by numpy arrays inside ``obj`` (dataclasses, dicts, lists)."""
    if obj is None or _depth > 4:
        return 0
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(nbytes_of(v, _depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes_of(v, _depth + 1) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(nbytes_of(v, _depth + 1) for v in vars(obj).values())
    return 0


class ByteLRU:
    """A thread-safe LRU mapping bounded by the total size of its values (``sizeof``, bytes).

    The most recently inserted item is always kept, even when alone it exceeds the budget.
    """

    def __init__(self, max_bytes: int, sizeof: Callable[[Any], int] = nbytes_of):
        self.max_bytes = int(max_bytes)
        self._sizeof = sizeof
        self._data: "OrderedDict[str, tuple[Any, int]]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return default
            self._data.move_to_end(key)
            return item[0]

    def put(self, key: str, value: Any) -> None:
        size = self._sizeof(value)
        with self._lock:
            self.pop(key)
            self._data[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._data) > 1:
                _, (_, s) = self._data.popitem(last=False)
                self._bytes -= s

    def pop(self, key: str) -> Any:
        with self._lock:
            item = self._data.pop(key, None)
            if item is None:
                return None
            self._bytes -= item[1]
            return item[0]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._data)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)
