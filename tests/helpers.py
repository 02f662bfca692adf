"""Applications and helpers shared by the tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any

import webob
import webob.dec

SECRET = "test-secret-0123456789abcdef0123456789"
OLD_SECRET = "old-secret-0123456789abcdef0123456789"


@webob.dec.wsgify
def session_app(request: webob.Request) -> webob.Response:
    """A small app whose paths read and change the session.

    ``/get/<key>`` answers the JSON of a value (or ``null``), ``/set/<key>``
    stores the JSON request body (or the ``value`` query parameter as text),
    ``/delete/<key>``, ``/incr/<key>``, ``/append/<key>`` (to a list),
    ``/invalidate``, ``/regenerate`` and ``/untouched`` do what they say.
    """
    session = request.environ["aerospike.session"]
    action, _, key = request.path_info.strip("/").partition("/")
    if action == "get":
        return webob.Response(json=session.get(key))
    if action == "set":
        session[key] = request.json if request.body else request.GET["value"]
    elif action == "delete":
        del session[key]
    elif action == "incr":
        session[key] = session.get(key, 0) + 1
    elif action == "append":
        session.setdefault(key, []).append(request.GET["value"])
    elif action == "invalidate":
        session.invalidate()
    elif action == "regenerate":
        session.regenerate()
    elif action == "keys":
        return webob.Response(json=sorted(session))
    return webob.Response("ok")


@webob.dec.wsgify
def login_app(request: webob.Request) -> webob.Response:
    """Log in as the ``user`` query parameter: a new id, bound to that user."""
    session = request.environ["aerospike.session"]
    session.regenerate()
    session.user_id = request.GET["user"]
    session["name"] = request.GET["user"]
    return webob.Response("ok")


def set_cookies(response: Any) -> dict[str, Any]:
    """The response's Set-Cookie headers, parsed, by cookie name."""
    parsed: dict[str, Any] = {}
    for header in response.headers.getall("Set-Cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        parsed.update(jar)
    return parsed


def body_json(response: Any) -> Any:
    return json.loads(response.body)


class BinPerKeyMapper:
    """A custom mapper, not entry-wise, that makes one bin of each session key."""

    def to_record(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {key: json.dumps(value) for key, value in data.items()}

    def from_record(self, bins: Mapping[str, Any]) -> dict[str, Any]:
        return {name: json.loads(text) for name, text in bins.items()}
