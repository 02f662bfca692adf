"""Pyramid integration: ``request.session`` kept in Aerospike.

::

    config = Configurator(settings={
        "aerospike_session.secret": SECRET,
        "aerospike_session.hosts": "127.0.0.1:3000",
    })
    config.include("aerospike_wsgi_session.pyramid")

The settings whose names start with ``aerospike_session.`` are the
middleware's and the store's options, read as
:mod:`aerospike_wsgi_session.settings` reads them (a Pyramid ini file gives
them as text, Python code may give typed values). ``request.session`` is then
a :class:`PyramidSession`: Pyramid's ``ISession`` (flash queues, CSRF tokens
for Pyramid's CSRF checks) over the package's own lazy session.

A tween, placed over Pyramid's exception view tween, gives each request its
session. It is saved once the response is final, after the response
callbacks, by a ``NewResponse`` subscriber, before anything is sent. A view
that raises an HTTP exception (a redirect after login, say) has its session
saved; a request that fails with any other exception saves nothing. When
Aerospike fails the request gets the middleware's ``503`` answer, unless an
exception view of the application renders the error first.

A change made while a streamed body is sent is saved when the body is
closed, if the session is stored already (a new one cannot get its cookie
any more). A ``NewResponse`` subscriber of the application runs after the
save if it was added after the include: what it changes in the session is
not saved.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pyramid.config import Configurator  # type: ignore[import-untyped]
from pyramid.events import NewResponse  # type: ignore[import-untyped]
from pyramid.httpexceptions import HTTPException  # type: ignore[import-untyped]
from pyramid.interfaces import ISession  # type: ignore[import-untyped]
from pyramid.request import Request  # type: ignore[import-untyped]
from pyramid.response import Response  # type: ignore[import-untyped]
from pyramid.tweens import EXCVIEW  # type: ignore[import-untyped]
from zope.interface import classImplements  # type: ignore[import-untyped]

from .exc import SessionError, StoreError
from .middleware import UNAVAILABLE_BODY, UNAVAILABLE_STATUS, SessionMiddleware
from .session import Session
from .settings import parse_settings

logger = logging.getLogger(__name__)

#: The prefix of the settings this integration reads.
SETTINGS_PREFIX = "aerospike_session."

#: Where the configured middleware is kept in the registry.
REGISTRY_KEY = "aerospike_wsgi_session.middleware"

#: Marks, in the environ, a request the tween answered with ``503``.
ANSWERED_KEY = "aerospike_wsgi_session.answered"

FLASH_PREFIX = "_f_"
CSRF_KEY = "_csrft_"

Handler = Callable[[Request], Response]


def includeme(config: Configurator) -> None:
    """Keep ``request.session`` in Aerospike; see the module's documentation.

    :raises ValueError: a setting is unknown, missing or invalid; the
        message names it.
    """
    settings = parse_settings(config.get_settings(), prefix=SETTINGS_PREFIX)
    # Only its session handling is used: the tween calls the handler itself.
    config.registry[REGISTRY_KEY] = settings.wrap(_never_called)
    config.set_session_factory(session_factory)
    config.add_tween(f"{__name__}.session_tween_factory", over=EXCVIEW)
    config.add_subscriber(save_session, NewResponse)


def _never_called(environ: Any, start_response: Any) -> list[bytes]:
    raise RuntimeError("the Pyramid tween calls the handler, not the middleware")


def session_factory(request: Request) -> PyramidSession:
    """Pyramid's session factory: the request's session, as an ``ISession``."""
    middleware: SessionMiddleware = request.registry[REGISTRY_KEY]
    session = request.environ.get(middleware.environ_key)
    if not isinstance(session, Session):
        raise RuntimeError(
            "request.session is only there inside the session tween; "
            'call config.include("aerospike_wsgi_session.pyramid")'
        )
    return PyramidSession(session)


def session_tween_factory(handler: Handler, registry: Any) -> Handler:
    """The tween that gives each request its session."""
    middleware: SessionMiddleware = registry[REGISTRY_KEY]

    def session_tween(request: Request) -> Response:
        session = Session(middleware.manager, request.environ)
        request.environ[middleware.environ_key] = session
        try:
            return handler(request)
        except StoreError as err:
            request.environ[ANSWERED_KEY] = True
            response = Response()
            _answer_unavailable(response, middleware, session, err)
            return response

    return session_tween


def save_session(event: NewResponse) -> None:
    """Save the request's session into its final response.

    Pyramid notifies ``NewResponse`` after the response callbacks, so what
    they change is saved too.
    """
    request, response = event.request, event.response
    middleware: SessionMiddleware = request.registry[REGISTRY_KEY]
    session = request.environ.get(middleware.environ_key)
    if not isinstance(session, Session) or request.environ.get(ANSWERED_KEY):
        return
    if _succeeded(request) and session.accessed:
        try:
            headers = list(response.headerlist)
            response.headerlist = middleware.session_headers(session, headers)
        except StoreError as err:
            _answer_unavailable(response, middleware, session, err)
            return
    if isinstance(response.app_iter, list | tuple) or not _succeeded(request):
        session.release_environ()
    else:
        _save_when_closed(response, middleware, session)


def _save_when_closed(
    response: Response, middleware: SessionMiddleware, session: Session
) -> None:
    """Save what a streamed body changes in the session once it is sent."""
    length = response.content_length
    response.app_iter = _ClosingBody(response.app_iter, middleware, session)
    response.content_length = length


class _ClosingBody:
    """A streamed response body that saves the session when it is closed."""

    def __init__(
        self, app_iter: Iterable[bytes], middleware: SessionMiddleware, session: Session
    ) -> None:
        self._app_iter = app_iter
        self._manager = middleware.manager
        self._session = session

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._app_iter)

    def close(self) -> None:
        try:
            close = getattr(self._app_iter, "close", None)
            if close is not None:
                close()
        finally:
            self._save()
            self._session.release_environ()

    def _save(self) -> None:
        if not self._session.accessed:
            return
        try:
            self._manager.save_late(self._session)
        except SessionError:
            logger.exception("saving session changes made during the body failed")


def _succeeded(request: Request) -> bool:
    """Whether the view ended well, or by raising an HTTP answer on purpose."""
    exception = getattr(request, "exception", None)
    return exception is None or isinstance(exception, HTTPException)


def _answer_unavailable(
    response: Response, middleware: SessionMiddleware, session: Session, err: StoreError
) -> None:
    """Turn ``response`` into the middleware's ``503``: nothing was saved."""
    logger.error("session store failed, answering 503: %s", err)
    session.readonly = True
    session.release_environ()
    response.status = UNAVAILABLE_STATUS
    response.headerlist = list(middleware._unavailable_headers)
    response.app_iter = [UNAVAILABLE_BODY]


class PyramidSession:
    """Pyramid's ``ISession`` over a :class:`~aerospike_wsgi_session.Session`.

    The mapping is the session's own: what is set here is saved like any
    session change. Flash messages live under ``_f_<queue>`` keys and the
    CSRF token under ``_csrft_``, so they must be values the store's mapper
    can encode (text is). :attr:`session` is the underlying session, with
    ``regenerate()``, ``user_id`` and ``id``.

    :param session: the request's session.
    """

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    def __repr__(self) -> str:
        return f"<PyramidSession {self.session!r}>"

    # The mapping, delegated.

    def __getitem__(self, key: str) -> Any:
        return self.session[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.session[key] = value

    def __delitem__(self, key: str) -> None:
        del self.session[key]

    def __contains__(self, key: object) -> bool:
        return key in self.session

    def __iter__(self) -> Iterator[str]:
        return iter(self.session)

    def __len__(self) -> int:
        return len(self.session)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self.session.get(key, default)

    def keys(self) -> Any:
        """The session's keys."""
        return self.session.keys()

    def values(self) -> Any:
        """The session's values."""
        return self.session.values()

    def items(self) -> Any:
        """The session's ``(key, value)`` pairs."""
        return self.session.items()

    def pop(self, key: str, default: Any = None) -> Any:
        """Remove ``key`` and return its value, or ``default`` if absent."""
        return self.session.pop(key, default)

    def popitem(self) -> tuple[str, Any]:
        """Remove and return some ``(key, value)`` pair."""
        return self.session.popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, set to ``default`` first if absent."""
        return self.session.setdefault(key, default)

    def update(self, d: Any) -> None:
        """Set every key of the mapping ``d``."""
        self.session.update(d)

    def clear(self) -> None:
        """Remove every key."""
        self.session.clear()

    # What ISession adds.

    @property
    def created(self) -> float:
        """When the session was created, in Unix seconds."""
        return self.session.created

    @property
    def new(self) -> bool:
        """Whether no stored session backs this one yet."""
        return self.session.new

    def invalidate(self) -> None:
        """Delete the stored session and expire the cookie; go on empty."""
        self.session.invalidate()

    def changed(self) -> None:
        """Mark the session changed after an in-place edit of a value."""
        self.session.changed()

    def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
        """Add ``msg`` to a flash queue, unless it is there and duplicates
        are not allowed."""
        messages = self.session.get(FLASH_PREFIX + queue, [])
        if not allow_duplicate and msg in messages:
            return
        self.session[FLASH_PREFIX + queue] = [*messages, msg]

    def pop_flash(self, queue: str = "") -> list[Any]:
        """Remove and return the messages of a flash queue."""
        messages: list[Any] = self.session.pop(FLASH_PREFIX + queue, [])
        return messages

    def peek_flash(self, queue: str = "") -> list[Any]:
        """The messages of a flash queue, left in place."""
        return list(self.session.get(FLASH_PREFIX + queue, []))

    def new_csrf_token(self) -> str:
        """Make, store and return a new CSRF token."""
        token = secrets.token_urlsafe(32)
        self.session[CSRF_KEY] = token
        return token

    def get_csrf_token(self) -> str:
        """The session's CSRF token, made if it has none yet."""
        token = self.session.get(CSRF_KEY)
        return token if isinstance(token, str) else self.new_csrf_token()


classImplements(PyramidSession, ISession)
