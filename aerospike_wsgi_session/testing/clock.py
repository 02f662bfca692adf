"""Clocks for the embedded server and the conversion to Aerospike void times."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Unix time of 2010-01-01T00:00:00Z, the origin of Aerospike void times.
CITRUSLEAF_EPOCH = 1_262_304_000

Clock = Callable[[], float]


class ManualClock:
    """A clock that only moves when told to, for tests that travel in time.

    Calling the instance returns the current time in Unix seconds, like
    :func:`time.time`. Safe to share between threads.

    :param start: the initial Unix time; the real current time when ``None``.
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Return the current time in Unix seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward.

        :param seconds: how far to move; must not be negative.
        :raises ValueError: if ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        with self._lock:
            self._now += seconds

    def set(self, t: float) -> None:
        """Jump to an absolute time.

        :param t: the new Unix time, in seconds.
        """
        with self._lock:
            self._now = float(t)


def server_seconds(clock: Clock) -> int:
    """Return the whole seconds since the Aerospike epoch by ``clock``.

    :param clock: a callable returning Unix seconds.
    """
    return int(clock()) - CITRUSLEAF_EPOCH
