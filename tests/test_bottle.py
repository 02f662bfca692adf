"""The Bottle integration: a real Bottle app behind the middleware."""

from __future__ import annotations

from typing import Any
from wsgiref.validate import validator

import bottle
import pytest
from webtest import TestApp

from aerospike_wsgi_session import AerospikeStore, SessionMiddleware
from aerospike_wsgi_session.bottle import SessionPlugin
from aerospike_wsgi_session.testing import AerospikeServer

from .conftest import MakeApp
from .helpers import SECRET, set_cookies


def bottle_app() -> bottle.Bottle:
    """Routes that reach the session through the environ and the plugin."""
    app = bottle.Bottle()
    app.install(SessionPlugin())

    @app.get("/environ")
    def through_environ() -> Any:
        session = bottle.request.environ["aerospike.session"]
        session["visits"] = session.get("visits", 0) + 1
        return {"visits": session["visits"]}

    @app.get("/plugin")
    def through_plugin(session: Any) -> Any:
        session["visits"] = session.get("visits", 0) + 1
        return {"visits": session["visits"]}

    @app.get("/hello/<name>")
    def with_url_argument(name: str, session: Any) -> Any:
        session["name"] = name
        return {"name": session["name"]}

    @app.get("/plain")
    def without_session() -> str:
        return "no session here"

    return app


def test_routes_share_one_session(make_app: MakeApp) -> None:
    browser = make_app(bottle_app())

    browser.get("/environ")
    browser.get("/plugin")

    assert browser.get("/environ").json == {"visits": 3}
    assert browser.get("/hello/ada").json == {"name": "ada"}


def test_a_route_without_the_argument_gets_no_session(make_app: MakeApp) -> None:
    response = make_app(bottle_app()).get("/plain")

    assert response.text == "no session here"
    assert set_cookies(response) == {}


def test_the_plugin_needs_the_middleware() -> None:
    app = bottle_app()
    app.catchall = False
    browser = TestApp(validator(app))

    with pytest.raises(RuntimeError, match="wrap the Bottle app in SessionMiddleware"):
        browser.get("/plugin")


def test_aerospike_down_answers_503(aerospike_server: AerospikeServer) -> None:
    store = AerospikeStore(set="bottle", hosts=aerospike_server.hosts)
    browser = TestApp(
        validator(SessionMiddleware(validator(bottle_app()), store, SECRET))
    )
    browser.get("/plugin")
    aerospike_server.stop()

    response = browser.get("/plugin", status=503)

    assert response.headers["Retry-After"] == "5"
    store.close()
