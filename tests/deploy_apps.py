"""The application the paste and gunicorn tests serve behind the session filter."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import webob
import webob.dec


@webob.dec.wsgify
def counter_app(request: webob.Request) -> webob.Response:
    """Log in, count, and tell which worker answered.

    ``POST /login`` (form field ``user``) moves the session to a new id and
    remembers the user; ``GET /whoami`` answers it; ``POST /incr/<key>``
    adds one to a counter and answers its value; ``GET /counts`` answers
    every counter; ``GET /ping`` leaves the session alone. Each response
    names the worker's pid in ``X-Worker-Pid``.
    """
    response = _answer(request, request.environ["aerospike.session"])
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


def _answer(request: webob.Request, session: Any) -> webob.Response:
    action, _, key = request.path_info.strip("/").partition("/")
    if action == "login" and request.method == "POST":
        session.regenerate()
        session["user"] = request.POST["user"]
        return webob.Response(json={"user": session["user"]})
    if action == "whoami":
        return webob.Response(json={"user": session.get("user")})
    if action == "incr" and request.method == "POST":
        session[key] = session.get(key, 0) + 1
        return webob.Response(json={key: session[key]})
    if action == "counts":
        return webob.Response(json={k: v for k, v in session.items() if k != "user"})
    return webob.Response("pong")


def app_factory(global_conf: Mapping[str, Any], **local_conf: str) -> Any:
    """The paste app factory of :func:`counter_app`."""
    return counter_app
