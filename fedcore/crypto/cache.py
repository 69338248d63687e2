"""``Cache``: what a process keeps between calls, as named, bounded objects.

Precomputed tables (a DJN fixed-base table is ~17 MB for a 2048-bit key) are worth keeping
for the next call with the same key, and must not grow without bound when many keys pass
through one process. Each kept table lives in one named ``Cache`` at module level of the
module that builds it (``paillier.ENCRYPTORS``, ``he._keys.STATES``), so what a process holds
is listed in one place, bounded, and can be dropped with ``clear()``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Cache(Generic[K, V]):
    """A thread-safe map of at most ``size`` entries, least recently used dropped first.

    ``get(key, build)`` builds a missing value under the cache's lock, so every caller for one
    key gets the same object (two threads never build the same table twice).
    """

    def __init__(self, name: str, size: int):
        if size < 1:
            raise ValueError(f"cache {name!r}: size must be >= 1, got {size}")
        self.name = name
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, build: Callable[[], V]) -> V:
        """The value of ``key``, built with ``build()`` on a miss (the oldest entry may go)."""
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                value = self._entries[key] = build()
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(key)
            return value

    def clear(self) -> None:
        """Drop every entry (the next ``get`` of each key builds it again)."""
        with self._lock:
            self._entries.clear()

    def keys(self) -> list[K]:
        """The keys held now, oldest first."""
        with self._lock:
            return list(self._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())  # a snapshot: other threads may change the cache meanwhile

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __repr__(self) -> str:
        return f"<Cache {self.name!r}: {len(self._entries)} of {self.size}>"
