"""The session mapping an application sees."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, MutableMapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from .exc import SessionUnavailableError

if TYPE_CHECKING:
    from .entries import LazyEntries
    from .store import Budget, SessionRecord

logger = logging.getLogger(__name__)

# Values of these types cannot change in place, so handing one out cannot let
# the application change the session behind the mapping's back.
_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes, Decimal})


class SessionBackend(Protocol):
    """What a :class:`Session` asks of the middleware that made it."""

    def load(self, session: Session) -> None: ...

    def invalidate(self, session: Session) -> None: ...

    def regenerate(self, session: Session, keep_data: bool) -> None: ...


class Session(MutableMapping[str, Any]):
    """The session of one request: a mapping that loads itself on first use.

    The middleware puts one in the WSGI environ for every request. Creating it
    costs nothing: the cookie is verified and the record read only when the
    application first reads, writes or asks about the session.

    Keys are strings; values are whatever the store's mapper can encode (with
    the default mapper: JSON types plus dates, times, decimals, UUIDs, bytes,
    sets and tuples). A value changed in place, such as a list appended to,
    is noticed at the end of the request by comparing its encoded form with
    what was loaded; with ``detect_changes=False`` on the middleware, call
    :meth:`changed` after such an edit instead.

    Attributes worth knowing:

    ``accessed``
        the application used the session in this request.
    ``modified``
        a key was set or deleted, or :meth:`changed` was called.
    ``new``
        there is no stored session behind this one (yet).
    ``id``
        the session id. Treat it as a password: it is what the cookie proves.
    """

    __slots__ = (
        "_assigned",
        "_backend",
        "_data",
        "_everything_touched",
        "_id",
        "_record",
        "_touched",
        "_user_id",
        "budget",
        "environ",
        "invalidated",
        "modified",
        "readonly",
        "reissue",
    )

    def __init__(self, backend: SessionBackend, environ: dict[str, Any]) -> None:
        # Every request pays for this, used or not: the rest of the state is
        # set up by start(), when the session is first used.
        self._backend = backend
        self.environ = environ
        self._data: LazyEntries | None = None
        self.modified = False
        # The request's time for Aerospike: set by the manager on first use.
        self.budget: Budget | None

    def __repr__(self) -> str:
        if self._data is None:
            return "<Session (not loaded)>"
        shown = f"{self._id[:6]}…" if self._id else "(no id)"
        return f"<Session {shown} new={self.new} keys={len(self._data.every_key())}>"

    # The mapping interface. Reads go through the loaded dict directly;
    # mutable values handed out are remembered as possibly changed.

    def __getitem__(self, key: str) -> Any:
        value = self._loaded()[key]
        if type(value) not in _IMMUTABLE:
            self._touched.add(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if type(key) is not str:
            raise TypeError(f"session keys are strings, not {type(key).__name__}")
        self._writable()[key] = value
        self._mark(key)

    def __delitem__(self, key: str) -> None:
        del self._writable()[key]
        self._mark(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __contains__(self, key: object) -> bool:
        return key in self._loaded()

    def clear(self) -> None:
        data = self._writable()
        for key in data.every_key():
            self._mark(key)
        data.clear()

    def _mark(self, key: str) -> None:
        self._touched.add(key)
        self._assigned.add(key)
        self.modified = True

    # What the application calls beyond the mapping.

    @property
    def accessed(self) -> bool:
        """Whether the application used the session in this request."""
        return self._data is not None

    @property
    def new(self) -> bool:
        """Whether no stored session backs this one."""
        return not self.record.stored

    @property
    def id(self) -> str | None:
        """The session id, or ``None`` for a new session not saved yet."""
        self._loaded()
        return self._id

    @property
    def created(self) -> float:
        """When the session was created, in Unix seconds."""
        return self.record.created

    @property
    def user_id(self) -> str | None:
        """The user this session belongs to, or ``None``.

        Set it at login. The store can then list and end every session of a
        user, for "log out everywhere" after a password change. It is kept
        apart from the data, so no key of the mapping can change it.
        """
        self._loaded()
        return self._user_id

    @user_id.setter
    def user_id(self, user_id: str | None) -> None:
        if user_id is not None and type(user_id) is not str:
            raise TypeError(f"user_id is a string, not {type(user_id).__name__}")
        self._writable()
        self._user_id = user_id
        self.modified = True

    @property
    def record(self) -> SessionRecord:
        """What the store knows of this session's record."""
        self._loaded()
        assert self._record is not None
        return self._record

    def changed(self) -> None:
        """Mark the whole session as changed, after editing a value in place."""
        self._writable()
        self._everything_touched = True
        self.modified = True

    def invalidate(self) -> None:
        """End the session now: its record is deleted and its cookie expired.

        The request goes on with an empty new session; what it stores from
        then on is saved under a new id.

        :raises SessionUnavailableError: the store could not load the
            session (the ``degrade`` policy), so it cannot delete it either.
        """
        self._writable()
        self._backend.invalidate(self)

    def regenerate(self, keep_data: bool = True) -> None:
        """Move the session to a new id and delete the record of the old one.

        Call it when the user logs in (or gains privileges), so that an id
        an attacker planted or saw before cannot ride on the new rights.

        :param keep_data: keep the data under the new id (the default), or
            start empty.
        :raises SessionUnavailableError: the store could not load the
            session (the ``degrade`` policy).
        """
        self._writable()
        self._backend.regenerate(self, keep_data)

    # What the middleware calls.

    def start(
        self, session_id: str | None, record: SessionRecord, reissue: bool = False
    ) -> None:
        """Fill the session from a loaded (or a new, empty) record."""
        self._id = session_id
        self._record = record
        self._data = record.data.copy()
        self._touched: set[str] = set()
        self._assigned: set[str] = set()
        self._everything_touched = False
        self._user_id = record.user_id
        self.modified = False
        #: The cookie must be sent again (a new id, or an old signing key).
        self.reissue = reissue
        #: The session was ended in this request.
        self.invalidated = False
        #: The store could not be reached: the session refuses changes.
        self.readonly = False

    def rename(self, session_id: str, record: SessionRecord) -> None:
        """Move the data to a new id and an unsaved record."""
        self.use_id(session_id)
        self._record = record
        self._everything_touched = True

    def release_environ(self) -> None:
        """Let go of the environ once the response is finished.

        The environ holds the session, so a session holding the environ
        would keep both, with the session's data, alive until the garbage
        collector finds the cycle, rather than freeing them with the
        request. Only the ``Cookie`` header is kept, for a session first
        used after its response (by an outer middleware, say).
        """
        cookie = self.environ.get("HTTP_COOKIE")
        self.environ = {} if cookie is None else {"HTTP_COOKIE": cookie}

    def use_id(self, session_id: str | None) -> None:
        """Give a session that is not stored yet the id to store it under."""
        self._id = session_id
        self.reissue = True

    def as_dict(self) -> LazyEntries:
        """The session data itself, for the store; changes to it go unseen."""
        return self._loaded()

    def pending_keys(self, detect_changes: bool) -> Collection[str] | None:
        """The keys a save must look at; ``None`` means all of them.

        With ``detect_changes``, that includes keys whose mutable value was
        read; without, only the keys set or deleted.
        """
        if self._everything_touched:
            return None
        return self._touched if detect_changes else self._assigned

    @property
    def assigned_keys(self) -> Collection[str]:
        """The keys set or deleted since the session was loaded or saved."""
        return self._assigned

    @property
    def user_changed(self) -> bool:
        """Whether :attr:`user_id` differs from the stored one."""
        return self._data is not None and self._user_id != self.record.user_id

    def saved(self) -> None:
        """Forget the pending changes once they are stored."""
        self._touched.clear()
        self._assigned.clear()
        self._everything_touched = False
        self.modified = False

    def _loaded(self) -> LazyEntries:
        if self._data is None:
            self._backend.load(self)
            assert self._data is not None
        return self._data

    def _writable(self) -> LazyEntries:
        data = self._loaded()
        if self.readonly:
            raise SessionUnavailableError(
                "the session store is unavailable, so this session cannot be changed"
            )
        return data
