"""The Aerospike session store.

One session is one Aerospike record. The mapper turns the session data into
bins; the default :class:`~aerospike_wsgi_session.mapper.JSONMapper` makes one
map bin with an entry per session key. Beside the mapper's bins the store
keeps a few bins of its own, whose names start with an underscore: a format
marker (a record without it is never loaded as a session) and the creation
time.

How a save reaches the record
-----------------------------

* A new session is written *create-only*. If the key exists, another session
  owns it, and the save reports a collision instead of touching that record.
* An existing session is written *update-only*, and only what changed: for a
  map bin, the entries whose encoded text differs from what was loaded are
  put and the entries the request removed are removed, all in one
  ``operate`` call. Two requests that change different keys therefore never
  overwrite each other, and a key changed by both ends with the value of the
  request that saved last. Because the write is update-only, a save that
  comes after another request destroyed the record fails instead of bringing
  the session back.
* Nothing is written when nothing changed.

The one contention error the server reports for such writes, "key busy"
(code 14, a hot record with too many writes queued), is retried a few times
with a short jittered backoff; past the bound the save raises
:class:`~aerospike_wsgi_session.exc.SessionConflictError`.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import random
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aerospike
from aerospike import exception as aerospike_errors
from aerospike_helpers.operations import map_operations, operations

from .exc import (
    DecodeError,
    SessionConflictError,
    SessionTooLargeError,
    StoreError,
    StoreUnavailableError,
    WriteInDoubtError,
)
from .mapper import JSONMapper, Mapper

logger = logging.getLogger(__name__)

T = TypeVar("T")

FORMAT_BIN = "_session"
CREATED_BIN = "_created"
FORMAT_VERSION = 1
STORE_BINS = frozenset({FORMAT_BIN, CREATED_BIN})

MAX_NAMESPACE_LENGTH = 31
MAX_SET_LENGTH = 63
MAX_BIN_LENGTH = 15

#: Client timeouts, in milliseconds, used unless the configuration names its
#: own. The client's defaults (one second and more, with retries) let a
#: request path stall far longer than a session lookup is worth.
DEFAULT_POLICIES: dict[str, dict[str, int]] = {
    "read": {"socket_timeout": 250, "total_timeout": 500, "max_retries": 1},
    "write": {"socket_timeout": 250, "total_timeout": 500, "max_retries": 0},
    "operate": {"socket_timeout": 250, "total_timeout": 500, "max_retries": 0},
    "remove": {"socket_timeout": 250, "total_timeout": 500, "max_retries": 0},
}
DEFAULT_CONNECT_TIMEOUT_MS = 1000

BUSY_ATTEMPTS = 5
BUSY_BACKOFF_SECONDS = 0.002

_UNAVAILABLE_ERRORS = (
    aerospike_errors.TimeoutError,
    aerospike_errors.ClientError,
    aerospike_errors.ClusterError,
)

_PASSED_THROUGH = (aerospike_errors.RecordNotFound, aerospike_errors.RecordExistsError)

#: The TTL the client reports for a record that never expires.
NEVER_EXPIRES = 0xFFFFFFFF

_stores: weakref.WeakSet[AerospikeStore] = weakref.WeakSet()


def _forget_clients_after_fork() -> None:
    # A client's sockets and tend thread belong to the parent; closing it here
    # would close the parent's sockets, so the child just lets go of it.
    for store in list(_stores):
        store._client = None


os.register_at_fork(after_in_child=_forget_clients_after_fork)


class SaveResult(enum.Enum):
    """What :meth:`AerospikeStore.save` did."""

    SAVED = "saved"
    UNCHANGED = "unchanged"
    #: A new session's key already belongs to a record; nothing was written.
    COLLISION = "collision"
    #: The session's record is gone (destroyed or expired); nothing was written.
    GONE = "gone"


@dataclass(slots=True)
class SessionRecord:
    """What the store knows of one session's record.

    :param data: the session data decoded at load time.
    :param payload: the mapper's bins as they are stored, the baseline a
        save is compared against. :meth:`AerospikeStore.save` keeps it up to
        date.
    :param created: the session's creation time, in Unix seconds.
    :param ttl: the record's remaining time to live in seconds when it was
        loaded, ``-1`` if it never expires.
    :param stored: whether the record exists; a save of a record that does
        not is a create-only write.
    """

    data: dict[str, Any]
    payload: dict[str, Any]
    created: float
    ttl: int = -1
    stored: bool = True

    @classmethod
    def new(cls, created: float) -> SessionRecord:
        """The record of a session that has not been written yet."""
        return cls(data={}, payload={}, created=created, stored=False)


class AerospikeStore:
    """Keeps sessions in an Aerospike set.

    :param namespace: the namespace that holds the sessions.
    :param set: the set that holds the sessions. :meth:`clear` empties it, so
        give sessions a set of their own.
    :param ttl: the records' time to live in seconds. ``None`` (the default)
        takes the session cookie's ``max_age``; ``0`` sends no TTL, so the
        namespace's ``default-ttl`` applies; ``-1`` keeps records forever
        (Aerospike's "never expire").
    :param mapper: turns session data into bins and back; a
        :class:`~aerospike_wsgi_session.mapper.JSONMapper` by default.
    :param client: an existing ``aerospike`` client to use. The store never
        closes a client it was given.
    :param client_config: without ``client``, the configuration of the
        client the store creates for itself, on first use, in the process
        that uses it (again after a fork). ``hosts`` may be a list of
        ``(host, port)`` or a string such as ``"h1:3000,h2:3000"``; every
        other key goes to ``aerospike.client`` as it is. Timeouts missing
        from ``policies`` default to :data:`DEFAULT_POLICIES`.
    """

    def __init__(
        self,
        namespace: str = "test",
        set: str = "session",
        ttl: int | None = None,
        mapper: Mapper | None = None,
        client: Any = None,
        **client_config: Any,
    ) -> None:
        _check_name("namespace", namespace, MAX_NAMESPACE_LENGTH)
        _check_name("set", set, MAX_SET_LENGTH)
        if ttl is not None and (type(ttl) is not int or ttl < -1):
            raise ValueError(f"ttl must be None, -1 or seconds, not {ttl!r}")
        self.namespace = namespace
        self.set = set
        self.ttl = ttl
        self.mapper: Mapper = mapper if mapper is not None else JSONMapper()
        self._entrywise = bool(getattr(self.mapper, "entrywise", False))
        self._own_client = client is None
        self._client = client
        self._client_config = (
            build_client_config(client_config) if client is None else {}
        )
        _stores.add(self)

    def __repr__(self) -> str:
        return f"<AerospikeStore {self.namespace}/{self.set}>"

    @property
    def client(self) -> Any:
        """The ``aerospike`` client, created on first use."""
        if self._client is None:
            config = self._client_config
            self._client = self._call("connect", lambda: aerospike.client(config))
        return self._client

    def resolve_ttl(self, max_age: int | None) -> int:
        """The TTL to write: ``ttl`` if set, else the cookie's ``max_age``.

        Returns ``0`` (the namespace default) when neither is set.
        """
        if self.ttl is not None:
            return self.ttl
        return max_age or 0

    def key(self, record_key: str) -> tuple[str, str, str]:
        """The Aerospike key tuple of a record key."""
        return (self.namespace, self.set, record_key)

    def load(self, record_key: str) -> SessionRecord | None:
        """Read a session, or ``None`` when it does not exist.

        A record without the store's format marker, or one the mapper cannot
        decode, reads as ``None`` with a warning: it is never adopted.
        """
        key = self.key(record_key)
        try:
            _, meta, bins = self._call("load", lambda: self.client.get(key))
        except aerospike_errors.RecordNotFound:
            return None
        if bins.get(FORMAT_BIN) != FORMAT_VERSION:
            logger.warning("record %s… is not a session; ignored", record_key[:8])
            return None
        return self._decode(record_key, meta, bins)

    def _decode(
        self, record_key: str, meta: Mapping[str, Any], bins: dict[str, Any]
    ) -> SessionRecord | None:
        payload = {name: bins[name] for name in bins if name not in STORE_BINS}
        try:
            data = self.mapper.from_record(payload)
        except DecodeError as err:
            logger.warning("session %s… cannot be decoded: %s", record_key[:8], err)
            return None
        ttl = meta["ttl"]
        return SessionRecord(
            data=data,
            payload=payload,
            created=float(bins.get(CREATED_BIN, 0)),
            ttl=-1 if ttl >= NEVER_EXPIRES else ttl,
        )

    def save(
        self,
        record_key: str,
        data: Mapping[str, Any],
        record: SessionRecord,
        *,
        ttl: int,
        keys: Collection[str] | None = None,
    ) -> SaveResult:
        """Write what changed in ``data`` since ``record`` was stored.

        A record that is not stored yet is created (create-only); a stored
        one is updated (update-only) with the changed bins and map entries.
        On success ``record`` is brought up to date, so a later save in the
        same request writes only what changed after this one.

        :param ttl: the TTL to send with the write.
        :param keys: with an entry-wise mapper such as the default one, the
            only keys that can have changed (the ones the request set,
            deleted or read a mutable value of); ``None`` compares every key.
        :raises UnencodableValueError: before anything is written.
        :raises SessionTooLargeError: the record would exceed the namespace's
            size limit; the stored session is left as it was.
        """
        if not record.stored:
            return self._create(record_key, data, record, ttl)
        delta = self._delta(data, record, keys)
        if not delta:
            return SaveResult.UNCHANGED
        key = self.key(record_key)
        policy = {"exists": aerospike.POLICY_EXISTS_UPDATE, "ttl": ttl}
        ops = delta.operations()
        try:
            self._write("save", lambda: self.client.operate(key, ops, policy=policy))
        except aerospike_errors.RecordNotFound:
            return SaveResult.GONE
        except _TooBig as err:
            raise SessionTooLargeError(delta.size()) from err.__cause__
        delta.apply(record.payload)
        return SaveResult.SAVED

    def _create(
        self, record_key: str, data: Mapping[str, Any], record: SessionRecord, ttl: int
    ) -> SaveResult:
        if not data:
            return SaveResult.UNCHANGED
        payload = self.mapper.to_record(data)
        bins = {**payload, FORMAT_BIN: FORMAT_VERSION, CREATED_BIN: int(record.created)}
        key = self.key(record_key)
        policy = {"exists": aerospike.POLICY_EXISTS_CREATE, "ttl": ttl}
        try:
            self._write("create", lambda: self.client.put(key, bins, policy=policy))
        except aerospike_errors.RecordExistsError:
            return SaveResult.COLLISION
        except _TooBig as err:
            raise SessionTooLargeError(payload_size(payload)) from err.__cause__
        record.payload, record.stored = payload, True
        return SaveResult.SAVED

    def _delta(
        self,
        data: Mapping[str, Any],
        record: SessionRecord,
        keys: Collection[str] | None,
    ) -> Delta:
        if keys is not None and self._entrywise:
            data = {key: data[key] for key in keys if key in data}
            return Delta.between(record.payload, self.mapper.to_record(data), keys)
        return Delta.between(record.payload, self.mapper.to_record(data), None)

    def touch(self, record_key: str, ttl: int) -> bool:
        """Reset a session's TTL without rewriting it. ``False`` if it is gone."""
        key = self.key(record_key)
        ops = [operations.touch()]
        policy = {"exists": aerospike.POLICY_EXISTS_UPDATE, "ttl": ttl}
        try:
            self._write("touch", lambda: self.client.operate(key, ops, policy=policy))
        except aerospike_errors.RecordNotFound:
            return False
        return True

    def destroy(self, record_key: str) -> None:
        """Delete a session. Deleting a missing session is not an error."""
        key = self.key(record_key)
        with contextlib.suppress(aerospike_errors.RecordNotFound):
            self._write("destroy", lambda: self.client.remove(key))

    def clear(self) -> None:
        """Delete every session of the set (an Aerospike truncate)."""
        self._call("clear", lambda: self.client.truncate(self.namespace, self.set, 0))

    def close(self) -> None:
        """Close the client, if the store created it; a later call opens a new one."""
        if not self._own_client:
            return
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _write(self, operation: str, call: Callable[[], T]) -> T:
        for attempt in range(1, BUSY_ATTEMPTS + 1):
            try:
                return self._call(operation, call)
            except _KeyBusy:
                if attempt == BUSY_ATTEMPTS:
                    break
                time.sleep(random.uniform(0, BUSY_BACKOFF_SECONDS * 2**attempt))
        raise SessionConflictError(
            f"{operation}: the session record stayed busy after {BUSY_ATTEMPTS} tries"
        )

    def _call(self, operation: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except _PASSED_THROUGH:
            raise
        except aerospike_errors.RecordBusy as err:
            raise _KeyBusy from err
        except aerospike_errors.RecordTooBig as err:
            raise _TooBig from err
        except aerospike_errors.ParamError as err:
            raise StoreError(f"{operation} refused: {_describe(err)}", err) from err
        except _UNAVAILABLE_ERRORS as err:
            raise _unavailable(operation, err) from err
        except aerospike_errors.AerospikeError as err:
            raise StoreError(f"{operation} failed: {_describe(err)}", err) from err


@dataclass(slots=True)
class Delta:
    """The changes that turn stored bins into new ones.

    A map bin stored on both sides changes entry by entry (:attr:`puts` and
    :attr:`removes`); any other bin that differs is written whole.
    """

    writes: dict[str, Any]
    puts: dict[str, dict[Any, Any]]
    removes: dict[str, list[Any]]

    @classmethod
    def between(
        cls,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        candidates: Collection[str] | None,
    ) -> Delta:
        """Compare bins. ``candidates`` limits which map keys may be removed."""
        delta = cls({}, {}, {})
        for name, value in new.items():
            stored = old.get(name)
            if isinstance(value, dict) and isinstance(stored, dict):
                delta._compare_maps(name, stored, value, candidates)
            elif value != stored:
                delta.writes[name] = value
        return delta

    def _compare_maps(
        self,
        name: str,
        old: Mapping[Any, Any],
        new: Mapping[Any, Any],
        candidates: Collection[str] | None,
    ) -> None:
        changed = {key: value for key, value in new.items() if old.get(key) != value}
        gone = [
            key
            for key in (old if candidates is None else candidates)
            if key in old and key not in new
        ]
        if changed:
            self.puts[name] = changed
        if gone:
            self.removes[name] = gone

    def __bool__(self) -> bool:
        return bool(self.writes or self.puts or self.removes)

    def operations(self) -> list[dict[str, Any]]:
        """The ``operate`` operations that apply this delta."""
        ops = [operations.write(name, value) for name, value in self.writes.items()]
        for name, items in self.puts.items():
            ops.append(map_operations.map_put_items(name, items))
        for name, keys in self.removes.items():
            ops.append(
                map_operations.map_remove_by_key_list(
                    name, keys, aerospike.MAP_RETURN_NONE
                )
            )
        return ops

    def apply(self, payload: dict[str, Any]) -> None:
        """Bring a stored payload up to date with this delta, in place."""
        payload.update(self.writes)
        for name, items in self.puts.items():
            payload[name].update(items)
        for name, keys in self.removes.items():
            for key in keys:
                del payload[name][key]

    def size(self) -> int:
        """A rough count of the bytes this delta writes."""
        return payload_size(self.writes) + payload_size(self.puts)


def payload_size(payload: Mapping[str, Any]) -> int:
    """A rough size in bytes of bins made of strings, bytes and maps of them."""
    total = 0
    for name, value in payload.items():
        total += len(name)
        if isinstance(value, dict):
            total += payload_size(value)
        elif isinstance(value, str | bytes):
            total += len(value)
        else:
            total += 8
    return total


class _KeyBusy(Exception):
    """Internal: the server answered "key busy"; the write may be retried."""


class _TooBig(Exception):
    """Internal: the server refused a record over its size limit."""


def _unavailable(operation: str, err: Exception) -> StoreUnavailableError:
    in_doubt = bool(getattr(err, "in_doubt", False))
    if in_doubt:
        return WriteInDoubtError(
            f"{operation}: no answer from Aerospike after the write was sent "
            f"({_describe(err)}); it may have been applied",
            err,
        )
    return StoreUnavailableError(
        f"{operation}: Aerospike unavailable ({_describe(err)})", err
    )


def _describe(err: Exception) -> str:
    code = getattr(err, "code", None)
    message = getattr(err, "msg", None) or str(err)
    return f"{type(err).__name__} {code}: {message}"


def build_client_config(options: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the store's client options into an ``aerospike.client`` config.

    Parses ``hosts`` and fills in the request-path timeouts the options do
    not set.
    """
    config = dict(options)
    config["hosts"] = parse_hosts(config.get("hosts", "127.0.0.1:3000"))
    config.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT_MS)
    policies = {
        name: dict(policy) for name, policy in config.get("policies", {}).items()
    }
    for name, defaults in DEFAULT_POLICIES.items():
        policies[name] = {**defaults, **policies.get(name, {})}
    config["policies"] = policies
    return config


def parse_hosts(hosts: str | Iterable[Any]) -> list[tuple[str, int]]:
    """Parse ``"h1:3000,h2:3000"`` (or space separated) or a list of hosts.

    Items of a list may be ``(host, port)`` pairs or ``"host:port"`` strings;
    the port defaults to 3000.
    """
    items = hosts.replace(",", " ").split() if isinstance(hosts, str) else list(hosts)
    parsed = [_parse_host(item) for item in items]
    if not parsed:
        raise ValueError("hosts: at least one host is needed")
    return parsed


def _parse_host(item: Any) -> tuple[str, int]:
    if isinstance(item, str):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "3000")
        item = (host.strip("[]"), port)
    try:
        host, port = item
        return (str(host), int(port))
    except (TypeError, ValueError):
        raise ValueError(f"hosts: {item!r} is not a host:port") from None


def _check_name(option: str, name: str, limit: int) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{option} must be a non-empty string, not {name!r}")
    if len(name.encode()) > limit:
        raise ValueError(f"{option} {name!r} is longer than Aerospike's {limit} bytes")
    if any(char in name for char in ":;\0"):
        raise ValueError(f"{option} {name!r} contains a character Aerospike refuses")
