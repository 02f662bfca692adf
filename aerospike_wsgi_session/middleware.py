"""The WSGI middleware."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Literal

from .cookies import CookieSettings
from .exc import SessionError, StoreError
from .manager import CookieAction, SessionManager
from .session import Session
from .signing import Signer, new_session_id
from .store import AerospikeStore

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str]]

UNAVAILABLE_STATUS = "503 Service Unavailable"
UNAVAILABLE_BODY = b"Sessions are unavailable right now. Please try again shortly.\n"


class SessionMiddleware:
    """Give a WSGI application server-side sessions stored in Aerospike.

    Every request finds a :class:`~aerospike_wsgi_session.session.Session`
    at ``environ[environ_key]``. It is lazy: a request that never touches it
    costs no Aerospike call and gets no cookie. A session that was used is
    saved before the response headers go out, so the client can never see a
    response whose session changes are not stored yet, and only when
    something changed. A new session gets a record and a cookie only once
    something is stored in it.

    The cookie holds the session id signed with HMAC-SHA256; the record is
    keyed by a keyed hash of the id, so the database holds no usable id.

    :param app: the WSGI application to wrap.
    :param store: the :class:`~aerospike_wsgi_session.store.AerospikeStore`.
    :param secret: the signing secret, or a list of them to rotate keys: the
        first signs, every one verifies, and a cookie signed with an older
        one is signed again with the first. Each at least 32 bytes of
        random data. Anyone who knows it can forge sessions.
    :param environ_key: where the session goes in the environ
        (``"aerospike.session"``).
    :param cookie_name: the cookie's name (``"session"``).
    :param max_age: the cookie's lifetime in seconds, and the records' TTL
        unless the store sets its own. ``None`` (the default) makes a
        browser-session cookie.
    :param path: the cookie's path (``"/"``).
    :param domain: the cookie's domain (``None``: the request's host only).
    :param secure: send the cookie over HTTPS only. ``"auto"`` (the default)
        decides per request: secure when the request came over HTTPS.
    :param httponly: hide the cookie from JavaScript (``True``).
    :param samesite: ``"Lax"`` (the default), ``"Strict"``, ``"None"`` or
        ``None`` to leave the attribute out.
    :param partitioned: add the ``Partitioned`` attribute (CHIPS).
    :param rolling: extend the session on every request, not only when it
        changes: the record is touched and the cookie sent again, at most
        once per ``rolling_interval`` seconds (60).
    :param detect_changes: notice values edited in place by comparing their
        encoded form with the stored one (``True``). When off, call
        :meth:`Session.changed` after such edits.
    :param idle_timeout: end a session after this many seconds without a
        request that uses it (``None``: no idle limit). The record's TTL
        becomes this, and Aerospike resets it on every read.
    :param absolute_timeout: end a session this many seconds after it was
        created, however active it is (``None``: no limit). OWASP suggests
        a few hours for most applications.
    :param on_store_error: ``"raise"`` (the default) answers ``503`` with a
        ``Retry-After`` when Aerospike fails; ``"degrade"`` lets a request
        whose session cannot be loaded go on with an empty session that
        refuses writes, leaving the cookie alone.
    :param retry_after: the ``Retry-After`` of that ``503``, in seconds (5).
    :param store_budget: the most seconds one request waits for Aerospike,
        all its calls together. Each call waits at most what is left; once it
        is spent, the next call fails at once as if Aerospike were down.
        ``None`` (the default): one read's and one write's total timeout of
        the store's policies, 1 s with its defaults; no budget for a client
        the application made, whose own timeouts apply.
    :param trust_proxy: with ``secure="auto"``, believe the
        ``X-Forwarded-Proto`` header. Only set it behind a proxy that sets
        that header itself: a client could send it too.
    :param record_key_secret: the secret record keys are hashed with; the
        last secret of ``secret`` by default.
    :param check_at_startup: run the store's self-check now, so that a
        missing namespace or refused TTLs fail at startup rather than at the
        first request (``False``; it needs Aerospike to be up).
    :param id_generator: makes new session ids (256 random bits).
    :param clock: the current time in Unix seconds.
    """

    def __init__(
        self,
        app: WSGIApplication,
        store: AerospikeStore,
        secret: str | bytes | Sequence[str | bytes],
        *,
        environ_key: str = "aerospike.session",
        cookie_name: str = "session",
        max_age: int | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool | Literal["auto"] = "auto",
        httponly: bool = True,
        samesite: Literal["Strict", "Lax", "None"] | None = "Lax",
        partitioned: bool = False,
        rolling: bool = False,
        rolling_interval: int = 60,
        detect_changes: bool = True,
        idle_timeout: int | None = None,
        absolute_timeout: int | None = None,
        on_store_error: Literal["raise", "degrade"] = "raise",
        retry_after: int = 5,
        store_budget: float | None = None,
        trust_proxy: bool = False,
        record_key_secret: str | bytes | None = None,
        check_at_startup: bool = False,
        id_generator: Callable[[], str] = new_session_id,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if on_store_error not in ("raise", "degrade"):
            raise ValueError(
                f"on_store_error must be 'raise' or 'degrade', not {on_store_error!r}"
            )
        if type(retry_after) is not int or retry_after < 0:
            raise ValueError(f"retry_after must be whole seconds, not {retry_after!r}")
        self.app = app
        self.environ_key = environ_key
        self.cookie = CookieSettings(
            name=cookie_name,
            max_age=max_age,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        )
        self.manager = SessionManager(
            store,
            Signer(secret, record_key_secret=record_key_secret),
            self.cookie,
            rolling=rolling,
            rolling_interval=rolling_interval,
            detect_changes=detect_changes,
            degrade=on_store_error == "degrade",
            idle_timeout=idle_timeout,
            absolute_timeout=absolute_timeout,
            store_budget=store_budget,
            id_generator=id_generator,
            clock=clock,
        )
        if check_at_startup:
            store.check(self.manager.ttl)
        self.trust_proxy = trust_proxy
        self._unavailable_headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(UNAVAILABLE_BODY))),
            ("Retry-After", str(retry_after)),
            ("Cache-Control", "no-store"),
        ]

    def __repr__(self) -> str:
        return f"<SessionMiddleware {self.app!r} {self.manager.store!r}>"

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        session = Session(self.manager, environ)
        environ[self.environ_key] = session
        response = _Response(self, session, start_response)
        try:
            app_iter = self.app(environ, response.start_response)
        except StoreError as err:
            return response.unavailable(err)
        except BaseException:
            session.release_environ()
            raise
        return response.wrap(app_iter)

    def session_headers(self, session: Session, headers: Headers) -> Headers:
        """Save the session, and add what that means to the response headers."""
        action = self.manager.save(session)
        headers = _add_vary_cookie(headers)
        if action is CookieAction.KEEP:
            return headers
        secure = self.request_is_secure(session.environ)
        if action is CookieAction.SET:
            value = self.manager.cookie_value(session)
            cookie = self.cookie.set_header(value, secure=secure)
        else:
            cookie = self.cookie.delete_header(secure=secure)
        headers.append(("Set-Cookie", cookie))
        return _make_private(headers)

    def request_is_secure(self, environ: WSGIEnvironment) -> bool:
        """Whether the cookie gets the ``Secure`` attribute on this request."""
        if self.cookie.secure != "auto":
            return self.cookie.secure
        if environ.get("wsgi.url_scheme") == "https":
            return True
        if not self.trust_proxy:
            return False
        forwarded = environ.get("HTTP_X_FORWARDED_PROTO", "")
        return str(forwarded).split(",")[0].strip().lower() == "https"


class _Response:
    """One response on its way out, its headers held back until saved.

    The application's ``start_response`` call is recorded; the real one is
    made when the first non-empty chunk of the body is ready (or the body
    turned out empty, or the application wrote through ``write()``), right
    after the session was saved.
    """

    __slots__ = (
        "_exc_info",
        "_headers",
        "_middleware",
        "_start_response",
        "_status",
        "_write",
        "session",
    )

    def __init__(
        self, middleware: SessionMiddleware, session: Session, start: StartResponse
    ) -> None:
        self._middleware = middleware
        self.session = session
        self._start_response = start
        self._status: str | None = None
        self._headers: Headers = []
        self._exc_info: OptExcInfo | None = None
        self._write: Callable[[bytes], object] | None = None

    @property
    def sent(self) -> bool:
        return self._write is not None

    def start_response(
        self, status: str, headers: Headers, exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None and self.sent:
            raise exc_info[1].with_traceback(exc_info[2])  # type: ignore[union-attr]
        self._status, self._headers, self._exc_info = status, headers, exc_info
        return self.write

    def write(self, data: bytes) -> None:
        if self._write is None:
            self.send_headers()
        assert self._write is not None
        self._write(data)

    def send_headers(self) -> None:
        if self._status is None:
            raise RuntimeError("the application did not call start_response")
        headers = self._headers
        if self.session.accessed:
            headers = self._middleware.session_headers(self.session, list(headers))
        self._write = self._start_response(self._status, headers, self._exc_info)

    def wrap(self, app_iter: Iterable[bytes]) -> Iterable[bytes]:
        # A list body runs no more application code: headers can go out now.
        if self._status is not None and type(app_iter) in (list, tuple):
            if self.sent:
                # Headers went out through write(): the application is done,
                # so what it changed since is stored now.
                self.closed()
                return app_iter
            try:
                self.send_headers()
            except StoreError as err:
                return self.unavailable(err)
            self.session.release_environ()
            return app_iter
        return _ClosingIterator(self, app_iter)

    def unavailable(self, err: StoreError) -> list[bytes]:
        """Answer ``503``: the session store failed before headers went out."""
        if self.sent:
            raise err
        logger.error("session store failed, answering 503: %s", err)
        # The client is told nothing was saved; nothing may be saved later.
        self.session.readonly = True
        self.session.release_environ()
        headers = list(self._middleware._unavailable_headers)
        self._write = self._start_response(UNAVAILABLE_STATUS, headers, sys.exc_info())
        return [UNAVAILABLE_BODY]

    def closed(self) -> None:
        """The body is done: store what changed after the headers went out."""
        if self.session.accessed and self.sent:
            try:
                self._middleware.manager.save_late(self.session)
            except SessionError:
                logger.exception("saving session changes made during the body failed")
        self.session.release_environ()


class _ClosingIterator:
    """The response body: sends headers before the first chunk, closes once."""

    __slots__ = ("_app_iter", "_chunks", "_closed", "_response")

    def __init__(self, response: _Response, app_iter: Iterable[bytes]) -> None:
        self._response = response
        self._app_iter = app_iter
        self._chunks: Iterator[bytes] = iter(app_iter)
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._response.sent:
            return next(self._chunks)
        try:
            return self._first_chunk()
        except StoreError as err:
            self._chunks = iter(self._response.unavailable(err))
            return next(self._chunks)

    def _first_chunk(self) -> bytes:
        for chunk in self._chunks:
            if chunk:
                self._response.send_headers()
                return chunk
        if not self._response.sent:
            self._response.send_headers()
        raise StopIteration

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._app_iter, "close", None)
            if close is not None:
                close()
        finally:
            self._response.closed()


def _add_vary_cookie(headers: Headers) -> Headers:
    for index, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            fields = [field.strip().lower() for field in value.split(",")]
            if "cookie" not in fields and "*" not in fields:
                headers[index] = (name, f"{value}, Cookie")
            return headers
    headers.append(("Vary", "Cookie"))
    return headers


def _make_private(headers: Headers) -> Headers:
    """Keep shared caches from storing a response that sets the cookie."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == "cache-control":
            directives = [part.strip() for part in value.split(",") if part.strip()]
            lowered = [part.lower() for part in directives]
            if "no-store" in lowered or "private" in lowered:
                return headers
            kept = [
                part
                for part in directives
                if part.lower() != "public" and not part.lower().startswith("s-maxage")
            ]
            headers[index] = (name, ", ".join(["private", *kept]))
            return headers
    headers.append(("Cache-Control", "private"))
    return headers
