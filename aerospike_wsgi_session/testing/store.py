"""The data of one embedded server: its namespaces, one lock and the clock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from .clock import Clock, server_seconds
from .records import Namespace, NamespaceConfig

logger = logging.getLogger(__name__)


class Store:
    """All namespaces of a server, guarded by one lock.

    Commands take :attr:`lock` for their whole run, so each is atomic, as a
    single-record command is on a real server.

    :param configs: the namespace settings.
    :param clock: a callable returning Unix seconds; expiry follows it.
    :raises ValueError: if two namespaces share a name.
    """

    def __init__(self, configs: Iterable[NamespaceConfig], clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.namespaces: dict[bytes, Namespace] = {}
        for config in configs:
            name = config.name.encode()
            if name in self.namespaces:
                raise ValueError(f"namespace {config.name!r} configured twice")
            self.namespaces[name] = Namespace(config)

    def now(self) -> int:
        """Return the clock's whole seconds since the Aerospike epoch."""
        return server_seconds(self.clock)

    def now_ns(self) -> int:
        """Return the clock's time in Unix nanoseconds (last-update times)."""
        return int(self.clock() * 1_000_000_000)

    def clear(self) -> None:
        """Delete every record and every index."""
        with self.lock:
            for namespace in self.namespaces.values():
                namespace.records.clear()
                namespace.indexes.clear()

    def purge_expired(self) -> int:
        """Delete every expired record and return how many went."""
        now = self.now()
        with self.lock:
            return sum(ns.purge_expired(now) for ns in self.namespaces.values())
