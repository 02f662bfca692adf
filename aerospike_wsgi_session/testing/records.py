"""Record storage of one namespace: records by digest, expiry, size, truncation."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from .particles import Particle
from .wire import encode_op

logger = logging.getLogger(__name__)

#: Storage overhead per record and per bin, besides bin names and a stored
#: key. A real 8.x server with a 1 MiB limit takes one bytes bin named "b" of
#: 1,048,517 bytes and no more: 59 bytes in all. How those bytes split
#: between record and bin is a model.
RECORD_OVERHEAD = 52
BIN_OVERHEAD = 6
MAX_TTL = 315_360_000
NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class NamespaceConfig:
    """Settings of one namespace of the embedded server.

    :param name: the namespace name.
    :param default_ttl: seconds a write with the namespace-default TTL lives;
        0 means such records never expire.
    :param max_record_size: the largest record in bytes (code 13 beyond).
    :param nsup_period: seconds between expiry sweeps; 0 turns expiry
        processing off, and then writes with a TTL are refused (code 22)
        unless ``allow_ttl_without_nsup`` is set.
    :param allow_ttl_without_nsup: accept TTLs although ``nsup_period`` is 0.
    :raises ValueError: for a setting a real server would refuse to start with.
    """

    name: str = "test"
    default_ttl: int = 0
    max_record_size: int = 1_048_576
    nsup_period: int = 1
    allow_ttl_without_nsup: bool = False

    def __post_init__(self) -> None:
        if not self.name or len(self.name.encode()) > 31:
            raise ValueError(f"namespace name must be 1-31 bytes: {self.name!r}")
        if not 0 <= self.default_ttl <= MAX_TTL:
            raise ValueError(f"default_ttl out of range: {self.default_ttl!r}")
        if self.default_ttl and not self.ttl_allowed:
            raise ValueError("default_ttl needs nsup_period or allow_ttl_without_nsup")
        if self.max_record_size < RECORD_OVERHEAD + BIN_OVERHEAD:
            raise ValueError(f"max_record_size too small: {self.max_record_size!r}")

    @property
    def ttl_allowed(self) -> bool:
        """Whether writes may carry a positive TTL."""
        return bool(self.nsup_period) or self.allow_ttl_without_nsup


class Index(NamedTuple):
    """A secondary index definition; matching is done by scanning."""

    name: str
    set_name: bytes | None
    bin: bytes
    ptype: int
    collection: int


class Record:
    """One stored record; bins stay as wire particles keyed by raw name."""

    __slots__ = (
        "_encoded",
        "bins",
        "digest",
        "generation",
        "key",
        "lut",
        "set_name",
        "ttl",
        "void_time",
    )

    def __init__(self, digest: bytes, set_name: bytes) -> None:
        self.digest = digest
        self.set_name = set_name
        self.bins: dict[bytes, Particle] = {}
        self.generation = 0
        self.void_time = 0
        self.ttl = 0
        self.lut = 0
        self.key: bytes | None = None
        self._encoded: bytes | None = None

    def encoded_bins(self) -> bytes:
        """Return every bin encoded as READ ops, cached until the next write."""
        if self._encoded is None:
            parts = [encode_op(p[0], n, p[1]) for n, p in self.bins.items()]
            self._encoded = b"".join(parts)
        return self._encoded

    def replace_bins(self, bins: dict[bytes, Particle]) -> None:
        """Store new bins and drop the cached encoding.

        :param bins: the complete new bin set.
        """
        self.bins = bins
        self._encoded = None

    def size(self) -> int:
        """Return the modelled storage size in bytes."""
        return record_size(self.bins, self.key)


def record_size(bins: dict[bytes, Particle], key: bytes | None = None) -> int:
    """Return the modelled storage size of a record.

    Bin names and a stored user key count, as they do on a real server.

    :param bins: the record's bins.
    :param key: the stored user key field (type byte and value), if any.
    """
    key_size = 0 if key is None else 1 + len(key)
    bin_sizes = (BIN_OVERHEAD + len(name) + len(p[1]) for name, p in bins.items())
    return RECORD_OVERHEAD + key_size + sum(bin_sizes)


class Namespace:
    """The records and indexes of one namespace. Not locked: callers lock.

    :param config: the namespace settings.
    """

    def __init__(self, config: NamespaceConfig) -> None:
        self.config = config
        self.records: dict[bytes, Record] = {}
        self.indexes: dict[str, Index] = {}
        self.set_names: set[bytes] = set()

    def insert(self, record: Record) -> None:
        """Add a new record; its set is remembered for ``sets`` info.

        :param record: the record, keyed by its digest.
        """
        self.records[record.digest] = record
        if record.set_name:
            self.set_names.add(record.set_name)

    def live(self, digest: bytes, now: int) -> Record | None:
        """Return the live record with ``digest``; drop it if it has expired.

        :param digest: the 20-byte key digest.
        :param now: seconds since the Aerospike epoch.
        """
        record = self.records.get(digest)
        if record is not None and record.void_time and record.void_time < now:
            del self.records[digest]
            return None
        return record

    def scan(self, set_name: bytes | None, now: int) -> Iterator[Record]:
        """Yield the live records of a set, or of the namespace when ``None``.

        :param set_name: the set, or ``None`` for every set.
        :param now: seconds since the Aerospike epoch.
        """
        for record in list(self.records.values()):
            if set_name is not None and record.set_name != set_name:
                continue
            if not record.void_time or record.void_time >= now:
                yield record

    def purge_expired(self, now: int) -> int:
        """Delete every expired record and return how many went.

        :param now: seconds since the Aerospike epoch.
        """
        expired = [
            d for d, r in self.records.items() if r.void_time and r.void_time < now
        ]
        for digest in expired:
            del self.records[digest]
        return len(expired)

    def truncate(self, set_name: bytes | None, before_ns: int) -> int:
        """Delete the records of a set (or all) last updated before a time.

        Times compare in whole milliseconds, as on a real server, so a record
        written in the cutoff's own millisecond stays.

        :param set_name: the set, or ``None`` for the whole namespace.
        :param before_ns: the cutoff, in Unix nanoseconds.
        """
        cutoff_ms = before_ns // NS_PER_MS
        doomed = [
            d
            for d, r in self.records.items()
            if (set_name is None or r.set_name == set_name)
            and r.lut // NS_PER_MS < cutoff_ms
        ]
        for digest in doomed:
            del self.records[digest]
        return len(doomed)
