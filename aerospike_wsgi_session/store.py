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
  request that saved last (a key the request assigned is written even when
  it equals the loaded value, so that rule holds for it too). Because the
  write is update-only, a save that comes after another request destroyed
  the record fails instead of bringing the session back.
* Moving a session to a new id (:meth:`AerospikeStore.take`) reads the
  record and deletes it guarded by the generation read, reading again when
  another request wrote in between; the new record is created from that
  latest state with the request's own changes on top.
* Nothing is written when nothing changed.

The one contention error the server reports for such writes, "key busy"
(code 14, a hot record with too many writes queued), is retried a few times
with a short jittered backoff; past the bound the save raises
:class:`~aerospike_wsgi_session.exc.SessionConflictError`.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import enum
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import aerospike
from aerospike import exception as aerospike_errors
from aerospike import predicates
from aerospike_helpers.operations import map_operations, operations

from .breaker import CircuitBreaker
from .entries import LazyEntries
from .exc import (
    DecodeError,
    SessionConflictError,
    SessionTooLargeError,
    StoreError,
    StoreUnavailableError,
    UnencodableValueError,
    WriteInDoubtError,
)
from .mapper import JSONMapper, Mapper
from .metrics import Metrics, MetricsHook
from .selfcheck import check_store
from .truncate import truncate

logger = logging.getLogger(__name__)

T = TypeVar("T")

FORMAT_BIN = "_session"
CREATED_BIN = "_created"
USER_BIN = "_user"
FORMAT_VERSION = 1
STORE_BINS = frozenset({FORMAT_BIN, CREATED_BIN, USER_BIN})

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
#: The timeouts of the queries that find a user's sessions, which are not on
#: every request's path; the client's own query default has no total limit.
DEFAULT_QUERY_POLICY = {"socket_timeout": 500, "total_timeout": 2000}
DEFAULT_CONNECT_TIMEOUT_MS = 1000

BUSY_ATTEMPTS = 5
BUSY_BACKOFF_SECONDS = 0.002

_UNAVAILABLE_ERRORS = (
    aerospike_errors.TimeoutError,
    aerospike_errors.ClientError,
    aerospike_errors.ClusterError,
)

_PASSED_THROUGH = (
    aerospike_errors.RecordNotFound,
    aerospike_errors.RecordExistsError,
    aerospike_errors.RecordGenerationError,
    aerospike_errors.IndexFoundError,
)
_ERROR_KINDS: dict[type[BaseException], str] = {
    aerospike_errors.RecordBusy: "busy",
    aerospike_errors.RecordTooBig: "too_big",
}

#: The TTL the client reports for a record that never expires.
NEVER_EXPIRES = 0xFFFFFFFF

# A read that also resets the record's TTL to the one of its last write.
_READ_TOUCH = {"read_touch_ttl_percent": 100}

_stores: weakref.WeakSet[AerospikeStore] = weakref.WeakSet()


def _forget_clients_after_fork() -> None:
    for store in list(_stores):
        # A lock another thread held at the fork stays held in the child.
        store._client_lock = threading.Lock()
        # A client the application gave is the application's to replace.
        if store._own_client and store._client is not None:
            _never_free(store._client)
            store._client = None


def _never_free(client: Any) -> None:
    # A client inherited from the parent must never be freed in the child:
    # its destructor stops a tend thread the child does not have, which
    # crashes the process (SIGSEGV), at once or when the interpreter exits.
    # Closing it would close the parent's sockets. So it gets one reference
    # that is never released, and the child makes a client of its own.
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(client))


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

    :param data: the session data, each value decoded when first used.
    :param payload: the mapper's bins as they are stored, the baseline a
        save is compared against. :meth:`AerospikeStore.save` keeps it up to
        date.
    :param created: the session's creation time, in Unix seconds.
    :param ttl: the record's remaining time to live in seconds when it was
        loaded, ``-1`` if it never expires.
    :param stored: whether the record exists; a save of a record that does
        not is a create-only write.
    :param user_id: the user the session is bound to, if any.
    :param generation: the record's generation when it was loaded.
    """

    data: LazyEntries
    payload: dict[str, Any]
    created: float
    ttl: int = -1
    stored: bool = True
    user_id: str | None = None
    generation: int = 0

    @classmethod
    def new(cls, created: float) -> SessionRecord:
        """The record of a session that has not been written yet."""
        return cls(data=LazyEntries(), payload={}, created=created, stored=False)


class Budget:
    """What is left of one request's time for Aerospike, in seconds.

    Each store call given a budget waits at most what is left of it, and
    spends the time it took; a call made once it is spent fails at once with
    :class:`~aerospike_wsgi_session.exc.StoreUnavailableError`.
    """

    __slots__ = ("left",)

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    def __repr__(self) -> str:
        return f"<Budget {self.left:.3f} s left>"


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
    :param metrics_hook: called with every metrics event; see
        :mod:`aerospike_wsgi_session.metrics`. :attr:`metrics` holds them too.
    :param breaker_threshold: store calls failing in a row (timeouts, lost
        connections) before further calls fail at once without waiting for
        Aerospike (5; 0 turns this off).
    :param breaker_cooldown: seconds calls fail at once before one call tries
        Aerospike again (5).
    """

    def __init__(
        self,
        namespace: str = "test",
        set: str = "session",
        ttl: int | None = None,
        mapper: Mapper | None = None,
        client: Any = None,
        *,
        metrics_hook: MetricsHook | None = None,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 5.0,
        **client_config: Any,
    ) -> None:
        _check_name("namespace", namespace, MAX_NAMESPACE_LENGTH)
        _check_name("set", set, MAX_SET_LENGTH)
        _check_failure_options(metrics_hook, breaker_threshold, breaker_cooldown)
        if ttl is not None and (type(ttl) is not int or ttl < -1):
            raise ValueError(f"ttl must be None, -1 or seconds, not {ttl!r}")
        self.namespace = namespace
        self.set = set
        self.ttl = ttl
        self.mapper: Mapper = mapper if mapper is not None else JSONMapper()
        if getattr(self.mapper, "bin_name", None) in STORE_BINS:
            raise ValueError("the mapper's bin name is one the store keeps for itself")
        self._entrywise = bool(getattr(self.mapper, "entrywise", False))
        self._lazy = self._entrywise and all(
            hasattr(self.mapper, method) for method in ("entries", "decode_entry")
        )
        self._own_client = client is None
        self._client = client
        self._client_lock = threading.Lock()
        self._client_config = (
            build_client_config(client_config) if client is None else {}
        )
        self._longest_total_ms = _longest_total_timeout(self._client_config)
        self.metrics = Metrics(metrics_hook)
        self.breaker = CircuitBreaker(breaker_threshold, breaker_cooldown)
        self.max_record_size: int | None = None
        self._user_index_ready = False
        _stores.add(self)

    def __repr__(self) -> str:
        return f"<AerospikeStore {self.namespace}/{self.set}>"

    @property
    def client(self) -> Any:
        """The ``aerospike`` client, created on first use."""
        client = self._client
        if client is None:
            # Threads of a gthread worker arrive together on its first
            # requests; each extra client would hold connections and a
            # tend thread until the process ends.
            with self._client_lock:
                if self._client is None:
                    self._client = self._connect()
                client = self._client
        return client

    def _connect(self) -> Any:
        config = self._client_config
        # Not guarded by the breaker: the call that needs the client was.
        return self._call("connect", lambda: aerospike.client(config), guarded=False)

    def default_budget(self) -> float | None:
        """The time an ordinary request needs: one read and one write.

        The sum of the read and operate policies' total timeouts, in seconds.
        ``None`` (no budget) for a client given by the application, whose
        own timeouts apply, or when a policy has no total timeout.
        """
        policies = self._client_config.get("policies")
        if not policies:
            return None
        read = policies["read"].get("total_timeout", 0)
        write = policies["operate"].get("total_timeout", 0)
        return (read + write) / 1000 if read and write else None

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

    def load(
        self, record_key: str, *, touch: bool = False, budget: Budget | None = None
    ) -> SessionRecord | None:
        """Read a session, or ``None`` when it does not exist.

        A record without the store's format marker, or one the mapper cannot
        decode, reads as ``None`` with a warning: it is never adopted. With
        a mapper that decodes values one by one, such as the default one, a
        single value that cannot be decoded reads as absent instead, with a
        warning, when it is first asked for (see
        :class:`~aerospike_wsgi_session.entries.LazyEntries`).

        :param touch: reset the record's TTL to the one of its last write,
            in the same round trip (Aerospike's ``read_touch_ttl_percent``).
        :param budget: the request's time for Aerospike; the other request
            path methods take it too.
        """
        key = self.key(record_key)
        policy = self._within(budget, "load", _READ_TOUCH if touch else None)
        self.metrics.count("loads")
        try:
            _, meta, bins = self._call(
                "load", lambda: self.client.get(key, policy), budget=budget
            )
        except aerospike_errors.RecordNotFound:
            self.metrics.count("misses.unknown")
            return None
        if bins.get(FORMAT_BIN) != FORMAT_VERSION:
            logger.warning("record %s… is not a session; ignored", record_key[:8])
            self.metrics.count("misses.undecodable")
            return None
        return self._decode(record_key, meta, bins)

    def _decode(
        self, record_key: str, meta: Mapping[str, Any], bins: dict[str, Any]
    ) -> SessionRecord | None:
        payload = {name: bins[name] for name in bins if name not in STORE_BINS}
        try:
            data = self._entries(payload)
        except Exception as err:
            # Any error of a custom mapper too: a record that does not decode
            # reads as no session, never as a failed request.
            reason = err if isinstance(err, DecodeError) else type(err).__name__
            logger.warning("session %s… cannot be decoded: %s", record_key[:8], reason)
            self.metrics.count("misses.undecodable")
            return None
        return SessionRecord(
            data=data,
            payload=payload,
            created=float(bins.get(CREATED_BIN, 0)),
            ttl=_ttl(meta),
            user_id=bins.get(USER_BIN),
            generation=int(meta["gen"]),
        )

    def save(
        self,
        record_key: str,
        data: Mapping[str, Any],
        record: SessionRecord,
        *,
        ttl: int,
        keys: Collection[str] | None = None,
        assigned: Collection[str] = (),
        user_id: str | None = None,
        budget: Budget | None = None,
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
        :param assigned: keys the request assigned. With an entry-wise
            mapper they are written even when their value equals the loaded
            one, so that the request that saves last wins each key it set.
        :param user_id: the user the session belongs to (see
            :meth:`destroy_user`); ``None`` for nobody.
        :raises UnencodableValueError: before anything is written.
        :raises SessionTooLargeError: the record would exceed the namespace's
            size limit; the stored session is left as it was.
        """
        if not record.stored:
            return self._create(record_key, data, record, ttl, user_id, budget)
        delta = self._delta(data, record, keys, assigned)
        ops = delta.operations()
        if user_id != record.user_id:
            ops.append(operations.write(USER_BIN, user_id))
        if not ops:
            return SaveResult.UNCHANGED
        key = self.key(record_key)
        policy = {"exists": aerospike.POLICY_EXISTS_UPDATE, "ttl": ttl}
        try:
            self._write(
                "save",
                lambda policy: self.client.operate(key, ops, policy=policy),
                policy,
                budget,
            )
        except aerospike_errors.RecordNotFound:
            self.metrics.count("conflicts")
            return SaveResult.GONE
        except _TooBig as err:
            raise self._too_big(delta.size()) from err.__cause__
        delta.apply(record.payload)
        record.user_id = user_id
        self.metrics.count("saves")
        self.metrics.count("bytes_written", delta.size())
        return SaveResult.SAVED

    def _create(
        self,
        record_key: str,
        data: Mapping[str, Any],
        record: SessionRecord,
        ttl: int,
        user_id: str | None,
        budget: Budget | None,
    ) -> SaveResult:
        if not data and user_id is None:
            return SaveResult.UNCHANGED
        payload = self._to_record(data)
        bins = {**payload, FORMAT_BIN: FORMAT_VERSION, CREATED_BIN: int(record.created)}
        if user_id is not None:
            bins[USER_BIN] = user_id
        key = self.key(record_key)
        policy = {"exists": aerospike.POLICY_EXISTS_CREATE, "ttl": ttl}
        try:
            self._write(
                "create",
                lambda policy: self.client.put(key, bins, policy=policy),
                policy,
                budget,
            )
        except aerospike_errors.RecordExistsError:
            self.metrics.count("conflicts")
            return SaveResult.COLLISION
        except _TooBig as err:
            raise self._too_big(payload_size(payload)) from err.__cause__
        record.payload, record.stored, record.user_id = payload, True, user_id
        self.metrics.count("creates")
        self.metrics.count("bytes_written", payload_size(bins))
        return SaveResult.SAVED

    def _too_big(self, size: int) -> SessionTooLargeError:
        return SessionTooLargeError(size, self.max_record_size)

    def _delta(
        self,
        data: Mapping[str, Any],
        record: SessionRecord,
        keys: Collection[str] | None,
        assigned: Collection[str] = (),
    ) -> Delta:
        if not self._entrywise:
            return Delta.between(record.payload, self._to_record(data), None)
        if keys is None and isinstance(data, LazyEntries):
            readable = set(data)  # decodes every value: the unreadable are known
            if data.unreadable:
                # Compare every key but the unreadable ones, which stay stored.
                stored = self.mapper.entries(record.payload)  # type: ignore[attr-defined]
                keys = ({*stored} | readable) - data.unreadable
        if keys is not None:
            data = {key: data[key] for key in keys if key in data}
        payload = self._to_record(data)
        return Delta.between(record.payload, payload, keys, assigned)

    def _to_record(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The mapper's bins for ``data``, refused when they cannot be stored."""
        try:
            payload = self.mapper.to_record(data)
        except UnencodableValueError:
            raise
        except Exception as err:
            raise self._unencodable(data, err) from err
        if not STORE_BINS.isdisjoint(payload):
            taken = sorted(STORE_BINS.intersection(payload))
            raise ValueError(f"the mapper wrote bins the store keeps: {taken}")
        return payload

    def _unencodable(
        self, data: Mapping[str, Any], err: Exception
    ) -> UnencodableValueError:
        """Name the key a custom mapper failed on, by encoding keys one by one."""
        reason = f"{type(err).__name__} from {type(self.mapper).__name__}"
        for key, value in data.items():
            try:
                self.mapper.to_record({key: value})
            except Exception:
                return UnencodableValueError(key, value, reason)
        return UnencodableValueError("(several keys together)", data, reason)

    def touch(self, record_key: str, ttl: int, budget: Budget | None = None) -> bool:
        """Reset a session's TTL without rewriting it. ``False`` if it is gone."""
        key = self.key(record_key)
        ops = [operations.touch()]
        policy = {"exists": aerospike.POLICY_EXISTS_UPDATE, "ttl": ttl}
        try:
            self._write(
                "touch",
                lambda policy: self.client.operate(key, ops, policy=policy),
                policy,
                budget,
            )
        except aerospike_errors.RecordNotFound:
            return False
        self.metrics.count("touches")
        return True

    def destroy(self, record_key: str, budget: Budget | None = None) -> bool:
        """Delete a session. Deleting a missing session is not an error.

        :returns: ``False`` when there was no record to delete.
        """
        return self._remove(self.key(record_key), budget=budget)

    def take(
        self, record_key: str, budget: Budget | None = None
    ) -> SessionRecord | None:
        """Read a session and delete it, with nothing written in between.

        The delete is guarded by the generation that was read; when another
        request wrote the record in between, it is read again (a bounded
        number of times). ``None`` when there is no session to take.

        :raises SessionConflictError: the record kept changing.
        """
        key = self.key(record_key)
        for attempt in range(1, BUSY_ATTEMPTS + 1):
            record = self.load(record_key, budget=budget)
            if record is None:
                return None
            policy = {"gen": aerospike.POLICY_GEN_EQ, "generation": record.generation}
            try:
                removed = self._remove(key, policy, budget)
            except aerospike_errors.RecordGenerationError:
                self.metrics.count("retries")
                _back_off(attempt)
                continue
            return record if removed else None
        raise SessionConflictError(
            f"take: the session record changed {BUSY_ATTEMPTS} times while read"
        )

    def rebase(
        self,
        latest: SessionRecord,
        data: Mapping[str, Any],
        record: SessionRecord,
        keys: Collection[str] | None,
        assigned: Collection[str] = (),
    ) -> LazyEntries:
        """The data of ``latest`` with this request's changes made on top.

        ``data`` and ``record`` are what :meth:`save` would take: the
        request's data and the record it was loaded from. The changes are
        the ones :meth:`save` would write, so keys that other requests
        saved since ``record`` was loaded are kept.
        """
        payload = copy.deepcopy(latest.payload)
        self._delta(data, record, keys, assigned).apply(payload)
        return self._entries(payload)

    def _entries(self, payload: dict[str, Any]) -> LazyEntries:
        """The session data in a record's payload, decoded now or when used."""
        if self._lazy:
            stored = self.mapper.entries(payload)  # type: ignore[attr-defined]
            return LazyEntries(stored=dict(stored), decode=self._decode_entry)
        return LazyEntries(self.mapper.from_record(payload))

    def _decode_entry(self, key: str, stored: Any) -> Any:
        try:
            return self.mapper.decode_entry(key, stored)  # type: ignore[attr-defined]
        except Exception as err:
            # Any error of a custom mapper too: the value reads as absent.
            reason = err if isinstance(err, DecodeError) else type(err).__name__
            logger.warning("a session value cannot be decoded: %s", reason)
            self.metrics.count("undecodable_values")
            raise DecodeError(str(reason)) from err

    def _remove(
        self,
        key: tuple[Any, ...],
        policy: dict[str, Any] | None = None,
        budget: Budget | None = None,
    ) -> bool:
        try:
            self._write(
                "destroy",
                lambda policy: self.client.remove(key, policy=policy),
                policy,
                budget,
            )
        except aerospike_errors.RecordNotFound:
            return False
        self.metrics.count("deletes")
        return True

    @property
    def user_index(self) -> str:
        """The name of the secondary index on the sessions' user ids."""
        return f"{self.set}_user"

    def create_user_index(self) -> None:
        """Create the secondary index that finds a user's sessions.

        It is created on first use by :meth:`user_sessions` and
        :meth:`destroy_user` too; call this at deployment to keep that first
        call fast (creating an index takes a couple of seconds). Creating it
        again is harmless.
        """

        def create() -> None:
            with contextlib.suppress(aerospike_errors.IndexFoundError):
                self.client.index_single_value_create(
                    self.namespace,
                    self.set,
                    USER_BIN,
                    aerospike.INDEX_STRING,
                    self.user_index,
                )

        self._call("create_user_index", create)
        self._user_index_ready = True

    def user_sessions(self, user_id: str) -> list[StoredSession]:
        """Every live session bound to ``user_id`` (see ``Session.user_id``)."""
        if not self._user_index_ready:
            self.create_user_index()
        query = self.client.query(self.namespace, self.set)
        query.select(CREATED_BIN)
        query.where(predicates.equals(USER_BIN, user_id))
        records = self._call("user_sessions", query.results)
        return [
            StoredSession(key[3], float(bins.get(CREATED_BIN, 0)), _ttl(meta))
            for key, meta, bins in records
        ]

    def destroy_user(self, user_id: str) -> int:
        """End every session of ``user_id``: "log out everywhere".

        :returns: how many sessions were deleted.
        """
        sessions = self.user_sessions(user_id)
        for session in sessions:
            self._remove((self.namespace, self.set, None, session.digest))
        logger.debug("destroyed %d sessions of a user", len(sessions))
        return len(sessions)

    def clear(self) -> None:
        """Delete every session of the set (an Aerospike truncate).

        :raises TruncateError: a node refused the truncate.
        """
        self._call("clear", lambda: truncate(self.client, self.namespace, self.set))

    def check(self, ttl: int | None = None) -> dict[str, Any]:
        """Check that Aerospike can keep these sessions; see :mod:`.selfcheck`.

        :raises CheckError: naming what is wrong: Aerospike unreachable, the
            namespace missing, records too small, or TTLs refused.
        """
        return check_store(self, ttl)

    def close(self) -> None:
        """Close the client, if the store created it; a later call opens a new one."""
        if not self._own_client:
            return
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _write(
        self,
        operation: str,
        send: Callable[[Any], T],
        policy: dict[str, Any] | None,
        budget: Budget | None,
    ) -> T:
        for attempt in range(1, BUSY_ATTEMPTS + 1):
            capped = self._within(budget, operation, policy)
            try:
                return self._call(operation, partial(send, capped), budget=budget)
            except _KeyBusy:
                if attempt == BUSY_ATTEMPTS:
                    break
                self.metrics.count("retries")
                _back_off(attempt)
        raise SessionConflictError(
            f"{operation}: the session record stayed busy after {BUSY_ATTEMPTS} tries"
        )

    def _within(
        self, budget: Budget | None, operation: str, policy: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The policy of a call, its total timeout cut to what the budget has left.

        :raises StoreUnavailableError: the budget is spent.
        """
        if budget is None:
            return policy
        left_ms = int(budget.left * 1000)
        if left_ms <= 0:
            self.metrics.count("errors.out_of_time")
            raise StoreUnavailableError(
                f"{operation}: this request's time for Aerospike is spent"
            )
        if left_ms >= self._longest_total_ms > 0:
            return policy
        return {**(policy or {}), "total_timeout": left_ms}

    def _call(
        self,
        operation: str,
        call: Callable[[], T],
        *,
        guarded: bool = True,
        budget: Budget | None = None,
    ) -> T:
        if guarded and not self.breaker.allow():
            self.metrics.count("errors.circuit_open")
            raise StoreUnavailableError(
                f"{operation}: Aerospike failed repeatedly; not trying again before "
                f"{self.breaker.cooldown:g} s have passed"
            )
        started = time.perf_counter()
        try:
            result = call()
        except BaseException as err:
            self._failed(err)
            raise self._translate(operation, err) from err
        finally:
            took = time.perf_counter() - started
            self.metrics.time(operation, took)
            if budget is not None:
                budget.left -= took
        self.breaker.succeeded()
        return result

    def _failed(self, err: BaseException) -> None:
        if isinstance(err, StoreUnavailableError):
            # A nested call (connecting, inside a load) already counted it.
            return
        if _is_unavailable(err):
            self.breaker.failed()
            kind = "in_doubt" if getattr(err, "in_doubt", False) else "unavailable"
        else:
            # The server answered, so it is up, whatever it answered.
            self.breaker.succeeded()
            if isinstance(err, _PASSED_THROUGH):
                return
            if not isinstance(err, aerospike_errors.AerospikeError):
                return
            kind = _ERROR_KINDS.get(type(err), "other")
        self.metrics.count(f"errors.{kind}")

    @staticmethod
    def _translate(operation: str, err: BaseException) -> BaseException:
        if isinstance(err, _PASSED_THROUGH):
            return err
        if isinstance(err, aerospike_errors.RecordBusy):
            return _KeyBusy()
        if isinstance(err, aerospike_errors.RecordTooBig):
            return _TooBig()
        if isinstance(err, aerospike_errors.ParamError):
            return StoreError(f"{operation} refused: {_describe(err)}", err)
        if _is_unavailable(err):
            return _unavailable(operation, err)
        if isinstance(err, aerospike_errors.AerospikeError):
            return StoreError(f"{operation} failed: {_describe(err)}", err)
        return err


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session found by :meth:`AerospikeStore.user_sessions`.

    :param digest: the record's digest (Aerospike's hash of its key).
    :param created: the session's creation time, in Unix seconds.
    :param ttl: seconds the record has left, ``-1`` if it never expires.
    """

    digest: bytes
    created: float
    ttl: int


def _ttl(meta: Mapping[str, Any]) -> int:
    ttl = int(meta["ttl"])
    return -1 if ttl >= NEVER_EXPIRES else ttl


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
        forced: Collection[str] = (),
    ) -> Delta:
        """Compare bins.

        ``candidates`` limits which map keys may be removed; map keys in
        ``forced`` are put even when their value did not change.
        """
        delta = cls({}, {}, {})
        for name, value in new.items():
            stored = old.get(name)
            if isinstance(value, dict) and isinstance(stored, dict):
                delta._compare_maps(name, stored, value, candidates, forced)
            elif value != stored:
                delta.writes[name] = value
        if candidates is None:
            # A bin the new data no longer has: writing None removes it.
            delta.writes.update((name, None) for name in old if name not in new)
        return delta

    def _compare_maps(
        self,
        name: str,
        old: Mapping[Any, Any],
        new: Mapping[Any, Any],
        candidates: Collection[str] | None,
        forced: Collection[str],
    ) -> None:
        changed = {
            key: value
            for key, value in new.items()
            if key in forced or old.get(key) != value
        }
        gone = [
            key
            for key in (old if candidates is None else candidates)
            if key in old and key not in new
        ]
        if changed:
            self.puts[name] = changed
        if gone:
            self.removes[name] = gone

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
        for name, value in self.writes.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        for name, items in self.puts.items():
            payload.setdefault(name, {}).update(items)
        for name, keys in self.removes.items():
            for key in keys:
                payload.get(name, {}).pop(key, None)

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


def _back_off(attempt: int) -> None:
    """Sleep a random while, up to twice as long as after the attempt before."""
    time.sleep(random.uniform(0, BUSY_BACKOFF_SECONDS * 2**attempt))


class _KeyBusy(Exception):
    """Internal: the server answered "key busy"; the write may be retried."""


class _TooBig(Exception):
    """Internal: the server refused a record over its size limit."""


def _is_unavailable(err: BaseException) -> bool:
    """Whether an error says Aerospike could not be reached in time."""
    return isinstance(err, _UNAVAILABLE_ERRORS) and not isinstance(
        err, aerospike_errors.ParamError
    )


def _unavailable(operation: str, err: BaseException) -> StoreUnavailableError:
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


def _describe(err: BaseException) -> str:
    code = getattr(err, "code", None)
    message = getattr(err, "msg", None) or str(err)
    return f"{type(err).__name__} {code}: {message}"


def build_client_config(options: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the store's client options into an ``aerospike.client`` config.

    Parses ``hosts``, fills in the request-path timeouts the options do
    not set, and asks the client to refuse option names it does not know
    (``validate_keys``; set it to ``False`` to turn that off).
    """
    config = dict(options)
    config["hosts"] = parse_hosts(config.get("hosts", "127.0.0.1:3000"))
    config.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT_MS)
    # Without it the client ignores an option or policy name it does not
    # know, so a misspelt one would silently change nothing.
    config.setdefault("validate_keys", True)
    # Besides the policies, ``policies`` holds a few options of its own,
    # such as ``login_timeout_ms``.
    policies = {
        name: dict(policy) if isinstance(policy, Mapping) else policy
        for name, policy in config.get("policies", {}).items()
    }
    defaults_by_name = {**DEFAULT_POLICIES, "query": DEFAULT_QUERY_POLICY}
    for name, defaults in defaults_by_name.items():
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


def _longest_total_timeout(config: Mapping[str, Any]) -> int:
    """The longest total timeout of the request policies, in milliseconds.

    A budget with more time left than that changes no call. ``0`` for a
    client given by the application, whose timeouts are unknown.
    """
    policies = config.get("policies")
    if not policies:
        return 0
    return max(int(policies[name].get("total_timeout", 0)) for name in DEFAULT_POLICIES)


def _check_failure_options(
    hook: MetricsHook | None, threshold: int, cooldown: float
) -> None:
    if hook is not None and not callable(hook):
        raise TypeError(f"metrics_hook must be callable, not {type(hook).__name__}")
    if type(threshold) is not int or threshold < 0:
        raise ValueError(
            f"breaker_threshold must be a whole number, 0 or more, not {threshold!r}"
        )
    if type(cooldown) not in (int, float) or cooldown < 0:
        raise ValueError(f"breaker_cooldown must be seconds, not {cooldown!r}")


def _check_name(option: str, name: str, limit: int) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{option} must be a non-empty string, not {name!r}")
    if len(name.encode()) > limit:
        raise ValueError(f"{option} {name!r} is longer than Aerospike's {limit} bytes")
    if any(char in name for char in ":;\0"):
        raise ValueError(f"{option} {name!r} contains a character Aerospike refuses")
