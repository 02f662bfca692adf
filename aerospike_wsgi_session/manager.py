"""Loading and saving the session of a request.

The :class:`SessionManager` holds what the middleware was configured with and
does the work a :class:`~aerospike_wsgi_session.session.Session` asks for:
verify the cookie, load the record, save what changed, and decide what the
response must do with the cookie.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Callable, Collection
from typing import Any

from .cookies import CookieSettings, read_cookie
from .exc import SessionError, StoreError
from .recent import Recent
from .session import Session
from .signing import Signer, new_session_id
from .store import AerospikeStore, Budget, SaveResult, SessionRecord

logger = logging.getLogger(__name__)

#: How many fresh ids a new session tries before giving up. Two 256-bit
#: random ids never collide in practice; a second attempt exists for a
#: broken id generator, not for chance.
ID_ATTEMPTS = 3

#: How many ``Cookie`` headers a manager remembers as verified, and the
#: longest one it remembers: together at most a few megabytes.
VERIFIED_HEADERS = 1024
VERIFIED_HEADER_LENGTH = 4096


class CookieAction(enum.Enum):
    """What the response does with the session cookie."""

    KEEP = "keep"
    SET = "set"
    DELETE = "delete"


class SessionManager:
    """Loads and saves request sessions for the middleware.

    :param store: where sessions live.
    :param signer: signs and verifies cookie values, and hashes ids into
        record keys.
    :param cookie: the session cookie's settings.
    :param rolling: extend the session's lifetime on every request, not
        only when it changes.
    :param rolling_interval: with ``rolling``, the fewest seconds between two
        extensions of an unchanged session.
    :param detect_changes: compare values that may have been edited in place
        with their stored form; when off, only assignments, deletions and
        :meth:`Session.changed` make a save.
    :param degrade: when loading fails (Aerospike unavailable, or answering
        with an error), go on with an empty read-only session instead of
        raising.
    :param idle_timeout: seconds without a request that uses the session
        after which it ends. The record's TTL is set to it and reset by each
        read, by the server itself.
    :param absolute_timeout: seconds after its creation at which a session
        ends, however active. Writes never extend the record past it.
    :param store_budget: the most seconds one request waits for Aerospike,
        all its calls together; ``None`` for the store's
        :meth:`~AerospikeStore.default_budget`.
    :param id_generator: makes new session ids.
    :param clock: the current time in Unix seconds.
    """

    def __init__(
        self,
        store: AerospikeStore,
        signer: Signer,
        cookie: CookieSettings,
        *,
        rolling: bool = False,
        rolling_interval: int = 60,
        detect_changes: bool = True,
        degrade: bool = False,
        idle_timeout: int | None = None,
        absolute_timeout: int | None = None,
        store_budget: float | None = None,
        id_generator: Callable[[], str] = new_session_id,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (
            ("idle_timeout", idle_timeout),
            ("absolute_timeout", absolute_timeout),
            ("rolling_interval", rolling_interval),
        ):
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"{name} must be a number of seconds, not {value!r}")
        self.store = store
        self.signer = signer
        self.cookie = cookie
        self.rolling = rolling
        self.rolling_interval = rolling_interval
        self.detect_changes = detect_changes
        self.degrade = degrade
        self.id_generator = id_generator
        self.clock = clock
        self.idle_timeout = idle_timeout or None
        self.absolute_timeout = absolute_timeout or None
        self.ttl = self.idle_timeout or store.resolve_ttl(cookie.max_age)
        if store_budget is None:
            store_budget = store.default_budget()
        elif type(store_budget) not in (int, float) or not store_budget > 0:
            raise ValueError(f"store_budget must be seconds, not {store_budget!r}")
        self.store_budget = store_budget
        self.metrics = store.metrics
        # A browser sends the same Cookie header request after request:
        # parsing and checking it once is enough. Only headers that passed
        # are kept, so forged ones cannot fill the memo.
        self._verified_headers: Recent[str, tuple[str, bool]] = Recent(VERIFIED_HEADERS)
        if rolling and self.ttl <= 0:
            logger.warning(
                "rolling has no effect: records get no TTL from this middleware "
                "(set max_age, the store's ttl or idle_timeout)"
            )

    def load(self, session: Session) -> None:
        """Fill ``session`` from its cookie and record, or start it empty."""
        budget = self.store_budget
        session.budget = None if budget is None else Budget(budget)
        verified = self._verify(session.environ)
        if verified is None:
            self._start_new(session)
            return
        session_id, current_key = verified
        try:
            record = self._load_record(session_id, session.budget)
        except StoreError as err:
            if not self.degrade:
                raise
            logger.warning("going on without a session: %s", err)
            self._start_new(session)
            session.readonly = True
            return
        if record is None:
            self._start_new(session)
            return
        session.start(session_id, record, reissue=not current_key)

    def _load_record(
        self, session_id: str, budget: Budget | None
    ) -> SessionRecord | None:
        record_key = self.signer.record_key(session_id)
        touch = self.idle_timeout is not None
        record = self.store.load(record_key, touch=touch, budget=budget)
        if record is not None and self._past_absolute_timeout(record):
            logger.debug("session %s… reached its absolute timeout", session_id[:6])
            self.metrics.count("misses.expired")
            self.store.destroy(record_key, budget)
            return None
        return record

    def _start_new(self, session: Session) -> None:
        session.start(None, SessionRecord.new(self.clock()))

    def _verify(self, environ: dict[str, Any]) -> tuple[str, bool] | None:
        header = environ.get("HTTP_COOKIE")
        if type(header) is str:
            verified = self._verified_headers.get(header)
            if verified is not None:
                return verified
        value = read_cookie(environ, self.cookie.name)
        if value is None:
            self.metrics.count("misses.no_cookie")
            return None
        verified = self.signer.unsign(value)
        if verified is None:
            logger.debug("session cookie rejected: malformed or badly signed")
            self.metrics.count("misses.bad_signature")
        elif type(header) is str and len(header) <= VERIFIED_HEADER_LENGTH:
            self._verified_headers.remember(header, verified)
        return verified

    def _past_absolute_timeout(self, record: SessionRecord) -> bool:
        limit = self.absolute_timeout
        return limit is not None and self.clock() - record.created >= limit

    def _ttl_for(self, record: SessionRecord) -> int:
        """The TTL of a write: never past the absolute timeout."""
        if self.absolute_timeout is None:
            return self.ttl
        left = math.ceil(record.created + self.absolute_timeout - self.clock())
        left = max(left, 1)
        return left if self.ttl <= 0 else min(self.ttl, left)

    def invalidate(self, session: Session) -> None:
        """Delete the session's record and start it over, empty."""
        self._destroy(session)
        self._start_new(session)
        session.invalidated = True

    def regenerate(self, session: Session, keep_data: bool) -> None:
        """Delete the session's record and give the session a new id.

        With ``keep_data``, what moves to the new id is the record as it is
        at this moment with this request's changes on top, so a key another
        request saved since this one loaded the session is kept.
        """
        if not keep_data:
            self._destroy(session)
            self._start_new(session)
        elif session.record.stored:
            self._take_over(session)
        created = session.record.created
        session.rename(self.id_generator(), SessionRecord.new(created))
        session.invalidated = True

    def _take_over(self, session: Session) -> None:
        """Refill a stored session from its record as it is now, deleting it.

        When another request ended the session after this one loaded it, the
        session is left empty: a logout must not come back under a new id.
        """
        assert session.id is not None
        latest = self.store.take(self.signer.record_key(session.id), session.budget)
        if latest is None:
            self._start_new(session)
            return
        keys = session.pending_keys(self.detect_changes)
        latest.data = self.store.rebase(
            latest, session.as_dict(), session.record, keys, session.assigned_keys
        )
        if session.user_changed:
            latest.user_id = session.user_id
        session.start(session.id, latest)

    def _destroy(self, session: Session) -> bool:
        """Delete the session's record.

        :returns: ``False`` when the record was stored but is gone already,
            ended by another request (or expired) since this one loaded it.
        """
        if session.id is None or not session.record.stored:
            return True
        key = self.signer.record_key(session.id)
        deleted = self.store.destroy(key, session.budget)
        logger.debug("session %s… destroyed", session.id[:6])
        return deleted

    def save(self, session: Session) -> CookieAction:
        """Store what changed, and say what the cookie needs.

        :raises SessionError: the session could not be saved; nothing of
            this save was written.
        """
        if session.readonly:
            return CookieAction.KEEP
        if not session.record.stored:
            return self._create(session)
        keys = session.pending_keys(self.detect_changes)
        if keys is not None and not keys and not session.user_changed:
            return self._unchanged(session)
        return self._update(session, keys)

    def save_late(self, session: Session) -> None:
        """Save changes made after the response headers went out.

        Only a stored session can take them: a new one would need a cookie.
        """
        keys = session.pending_keys(self.detect_changes)
        nothing = keys is not None and not keys and not session.user_changed
        if session.readonly or nothing:
            return
        if not session.record.stored:
            if session.as_dict():
                logger.warning(
                    "a new session was changed after the response headers were "
                    "sent; it cannot get a cookie any more, so it is not saved"
                )
            return
        self._update(session, keys)

    def _create(self, session: Session) -> CookieAction:
        if not session.as_dict() and session.user_id is None:
            return CookieAction.DELETE if session.invalidated else CookieAction.KEEP
        for _ in range(ID_ATTEMPTS):
            if session.id is None:
                session.use_id(self.id_generator())
            assert session.id is not None
            result = self._store(session, None)
            if result is not SaveResult.COLLISION:
                logger.debug("session %s… created", session.id[:6])
                session.saved()
                return CookieAction.SET
            logger.warning(
                "new session id %s… already taken; drawing another", session.id[:6]
            )
            session.use_id(None)
        raise SessionError(f"no free session id after {ID_ATTEMPTS} attempts")

    def _store(self, session: Session, keys: Collection[str] | None) -> SaveResult:
        assert session.id is not None
        return self.store.save(
            self.signer.record_key(session.id),
            session.as_dict(),
            session.record,
            ttl=self._ttl_for(session.record),
            keys=keys,
            assigned=session.assigned_keys,
            user_id=session.user_id,
            budget=session.budget,
        )

    def _update(self, session: Session, keys: Collection[str] | None) -> CookieAction:
        assert session.id is not None
        result = self._store(session, keys)
        session.saved()
        if result is SaveResult.GONE:
            logger.warning(
                "session %s… ended during this request; its changes are dropped",
                session.id[:6],
            )
            return CookieAction.KEEP
        if result is SaveResult.UNCHANGED:
            return self._unchanged(session)
        logger.debug("session %s… saved", session.id[:6])
        refresh = session.reissue or self.cookie.max_age is not None
        return CookieAction.SET if refresh else CookieAction.KEEP

    def _unchanged(self, session: Session) -> CookieAction:
        if self.rolling and self._extension_due(session.record):
            return self._extend(session)
        return CookieAction.SET if session.reissue else CookieAction.KEEP

    def _extend(self, session: Session) -> CookieAction:
        assert session.id is not None
        key = self.signer.record_key(session.id)
        try:
            ttl = self._ttl_for(session.record)
            extended = self.store.touch(key, ttl, session.budget)
        except StoreError as err:
            if not self.degrade:
                raise
            # Nothing the application did is lost: the session lives out its
            # current TTL, and a later request extends it.
            logger.warning("session not extended, going on: %s", err)
            return CookieAction.KEEP
        if not extended:
            return CookieAction.KEEP
        logger.debug("session %s… extended", session.id[:6])
        return CookieAction.SET

    def _extension_due(self, record: SessionRecord) -> bool:
        # Without a TTL of ours there is nothing to extend, nor a way to tell
        # how long ago the last extension was.
        if self.ttl <= 0:
            return False
        if record.ttl < 0:
            return True
        return self.ttl - record.ttl >= self.rolling_interval

    def cookie_value(self, session: Session) -> str:
        """The signed cookie value of the session's id."""
        assert session.id is not None
        return self.signer.sign(session.id)
