"""Bottle integration: a plugin that hands routes their session.

Wrap the Bottle app in :class:`~aerospike_wsgi_session.SessionMiddleware`
as any WSGI app; every route can reach the session as
``bottle.request.environ["aerospike.session"]``. Installing
:class:`SessionPlugin` is shorter to read: a route that takes a ``session``
argument gets the session there::

    app = bottle.Bottle()
    app.install(SessionPlugin())

    @app.get("/")
    def index(session):
        session["visits"] = session.get("visits", 0) + 1
        return f"visit number {session['visits']}"

    application = SessionMiddleware(app, store, secret=SECRET)

The plugin also answers ``503`` with a ``Retry-After`` when a route fails
because Aerospike does, as the middleware would; Bottle itself would turn
that error into a ``500`` page.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import bottle  # type: ignore[import-untyped]

from .exc import StoreError
from .middleware import UNAVAILABLE_BODY, UNAVAILABLE_STATUS

logger = logging.getLogger(__name__)


class SessionPlugin:
    """Pass the request's session to the routes that take a ``keyword`` argument.

    :param keyword: the name of the routes' argument (``"session"``).
    :param environ_key: where the middleware puts the session; the
        middleware's ``environ_key`` (``"aerospike.session"``).
    :param retry_after: the ``Retry-After`` of the ``503`` answered when
        Aerospike fails during a route, in seconds (5).
    """

    name = "aerospike_session"
    api = 2

    def __init__(
        self,
        keyword: str = "session",
        environ_key: str = "aerospike.session",
        retry_after: int = 5,
    ) -> None:
        self.keyword = keyword
        self.environ_key = environ_key
        self.retry_after = retry_after

    def apply(self, callback: Callable[..., Any], route: Any) -> Callable[..., Any]:
        """Wrap ``callback`` if its route takes the session argument."""
        if self.keyword not in route.get_callback_args():
            return callback

        @functools.wraps(callback)
        def with_session(*args: Any, **kwargs: Any) -> Any:
            kwargs[self.keyword] = self.session()
            try:
                return callback(*args, **kwargs)
            except StoreError as err:
                logger.error("session store failed, answering 503: %s", err)
                raise self.unavailable() from err

        return with_session

    def session(self) -> Any:
        """The current request's session."""
        session = bottle.request.environ.get(self.environ_key)
        if session is None:
            raise RuntimeError(
                f"no session at environ[{self.environ_key!r}]: wrap the Bottle "
                "app in SessionMiddleware"
            )
        return session

    def unavailable(self) -> bottle.HTTPResponse:
        """The ``503`` answer for a route that Aerospike failed."""
        return bottle.HTTPResponse(
            body=UNAVAILABLE_BODY,
            status=UNAVAILABLE_STATUS,
            headers={
                "Content-Type": "text/plain; charset=utf-8",
                "Retry-After": str(self.retry_after),
                "Cache-Control": "no-store",
            },
        )
