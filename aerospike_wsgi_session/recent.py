"""A bounded memo for work that repeats from one request to the next."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """Remembers up to ``size`` results, and forgets them all once full.

    Forgetting everything at once, rather than the oldest entry, keeps both
    lookups and additions to one dict operation each; the entries in use
    come back within a few requests. Safe to share between threads: a
    result is either found whole or computed again.

    :param size: the most results kept.
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int) -> None:
        self._entries: dict[K, V] = {}
        self._size = size

    def get(self, key: K) -> V | None:
        """The result remembered for ``key``, or ``None``."""
        return self._entries.get(key)

    def remember(self, key: K, value: V) -> None:
        """Keep ``value`` as the result for ``key``."""
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = value
