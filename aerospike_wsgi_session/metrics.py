"""Counters and timings of a session store.

Every :class:`~aerospike_wsgi_session.store.AerospikeStore` keeps a
:class:`Metrics`. Read it as a dict with :meth:`Metrics.snapshot`, or give the
store a hook that receives every event as it happens, to feed statsd,
Prometheus or anything else::

    def to_statsd(kind, name, value):
        if kind == "timing":
            statsd.timing(f"sessions.{name}", value * 1000)
        else:
            statsd.incr(f"sessions.{name}", value)

    store = AerospikeStore(set="sessions", metrics_hook=to_statsd)

Counter names: ``loads``, ``misses.<reason>`` (``no_cookie``,
``bad_signature``, ``unknown``, ``expired``, ``undecodable``; a record that
Aerospike expired by its TTL is ``unknown``, as Aerospike cannot tell it from
one that never existed, and ``expired`` is the ``absolute_timeout``), ``saves``,
``creates``, ``touches``, ``deletes``, ``undecodable_values`` (single
values that could not be decoded, and so read as absent), ``conflicts`` (a
save found its session ended by another request, or a new id already
taken), ``retries``
(writes retried after "key busy"), ``errors.<kind>`` (``unavailable``,
``in_doubt``, ``too_big``, ``busy``, ``circuit_open``, ``out_of_time``
(the request's ``store_budget`` was spent), ``other``) and
``bytes_written``. Timings are named after the store call (``load``,
``save``, ``create``, ``touch``, ``destroy``...) and measured in seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal

logger = logging.getLogger(__name__)

EventKind = Literal["counter", "timing"]
MetricsHook = Callable[[EventKind, str, float], None]


class Metrics:
    """Thread-safe counters and timing summaries, with an optional hook.

    :param hook: called as ``hook(kind, name, value)`` for every event, where
        ``kind`` is ``"counter"`` or ``"timing"``. An exception it raises is
        logged and otherwise ignored: metrics never break a request.
    """

    def __init__(self, hook: MetricsHook | None = None) -> None:
        self.hook = hook
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._timings: dict[str, list[float]] = {}

    def count(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + amount
        if self.hook is not None:
            self._push("counter", name, amount)

    def time(self, name: str, seconds: float) -> None:
        """Record that the call ``name`` took ``seconds``."""
        with self._lock:
            summary = self._timings.get(name)
            if summary is None:
                self._timings[name] = [1, seconds, seconds]
            else:
                summary[0] += 1
                summary[1] += seconds
                summary[2] = max(summary[2], seconds)
        if self.hook is not None:
            self._push("timing", name, seconds)

    def snapshot(self) -> dict[str, float]:
        """Every counter, and for each timing its count, total and maximum.

        Timings appear as ``latency.<name>.count``, ``.total`` and ``.max``.
        """
        with self._lock:
            result: dict[str, float] = dict(self._counters)
            for name, (count, total, longest) in self._timings.items():
                result[f"latency.{name}.count"] = count
                result[f"latency.{name}.total"] = total
                result[f"latency.{name}.max"] = longest
        return result

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            self._counters.clear()
            self._timings.clear()

    def _push(self, kind: EventKind, name: str, value: float) -> None:
        assert self.hook is not None
        try:
            self.hook(kind, name, value)
        except Exception:
            logger.exception("the metrics hook failed on %s %s", kind, name)
