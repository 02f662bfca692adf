"""A circuit breaker, so that no worker piles up behind a dead server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    """Fails calls fast while the store looks down.

    Closed, every call goes through. After ``threshold`` failures in a row it
    opens: calls are refused at once for ``cooldown`` seconds. Then one call,
    the probe, is let through while the others are still refused; its
    success closes the breaker, its failure opens it for another cooldown.

    :param threshold: failures in a row that open the breaker; ``0`` turns
        the breaker off.
    :param cooldown: seconds the breaker stays open before a probe.
    :param clock: a monotonic clock, in seconds.
    """

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 0 or cooldown < 0:
            raise ValueError("the breaker's threshold and cooldown cannot be negative")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def open(self) -> bool:
        """Whether calls are being refused."""
        return self._opened_at is not None

    def allow(self) -> bool:
        """Whether a call may go through now."""
        if self._opened_at is None:
            return True
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or self._clock() - self._opened_at < self.cooldown:
                return False
            self._probing = True
            return True

    def succeeded(self) -> None:
        """Report a call that reached the server."""
        if self._failures or self._opened_at is not None:
            with self._lock:
                self._failures = 0
                self._opened_at = None
                self._probing = False

    def failed(self) -> None:
        """Report a call that could not reach the server in time."""
        if self.threshold == 0:
            return
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                self._opened_at = self._clock()
                self._probing = False
