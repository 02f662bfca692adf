"""What the paste and gunicorn tests share.

The test ini file, the application it serves behind the session filter, the
backend the sessions go to, and a probe of the store's client for gunicorn.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import webob
import webob.dec

from aerospike_wsgi_session.signing import Signer
from aerospike_wsgi_session.testing.plugin import Hosts

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from aerospike_wsgi_session import SessionMiddleware

INI = Path(__file__).parent / "data" / "session.ini"

PIPELINE = "[pipeline:main]\npipeline = session counter\n"
PROBED_PIPELINE = """[filter:probe]
use = call:tests.deployment:client_probe_factory

[pipeline:main]
pipeline = probe session counter
"""

#: The pid of the process each store client was first seen in, by ``id()``.
_client_origins: dict[int, int] = {}


@dataclass(frozen=True)
class Backend:
    """Where the tests keep sessions."""

    hosts: Hosts
    namespace: str
    set_name: str

    @property
    def hosts_text(self) -> str:
        return " ".join(f"{host}:{port}" for host, port in self.hosts)

    def global_conf(self) -> dict[str, str]:
        """The paste global configuration that points the test ini here."""
        return {
            "aerospike_hosts": self.hosts_text,
            "aerospike_namespace": self.namespace,
            "aerospike_set": self.set_name,
        }


def ini_signer(ini: Path = INI) -> Signer:
    """A signer with the secrets of the ini's session filter.

    It reads cookie values the served application issued and finds the
    record keys behind them.
    """
    parser = configparser.RawConfigParser()
    parser.read(ini, encoding="utf-8")
    return Signer(parser["filter:session"]["secret"].split())


def probed_ini(directory: Path) -> Path:
    """A copy of the test ini with a :class:`ClientProbe` before the session."""
    return edited_ini(directory, PIPELINE, PROBED_PIPELINE)


def edited_ini(directory: Path, old: str, new: str) -> Path:
    """A copy of the test ini with one piece of text replaced."""
    text = INI.read_text(encoding="utf-8")
    assert old in text
    path = directory / "edited.ini"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@webob.dec.wsgify
def counter_app(request: webob.Request) -> webob.Response:
    """Log in, count, forget, log out, and tell which worker answered.

    ``POST /login`` (form field ``user``) moves the session to a new id and
    remembers the user; ``GET /whoami`` answers it; ``POST /incr/<key>``
    adds one to a counter, stores each form field as given, and answers the
    counter's value; ``POST /delete/<key>`` removes a key; ``POST /logout``
    ends the session; ``GET /counts`` answers every key but the user;
    ``GET /ping`` leaves the session alone. Each response names the worker's
    pid in ``X-Worker-Pid``.
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
        for name, value in request.POST.items():
            session[name] = value
        session[key] = session.get(key, 0) + 1
        return webob.Response(json={key: session[key]})
    if action == "delete" and request.method == "POST":
        return webob.Response(json={key: session.pop(key, None)})
    if action == "logout" and request.method == "POST":
        session.invalidate()
        return webob.Response(json={"user": None})
    if action == "counts":
        return webob.Response(json={k: v for k, v in session.items() if k != "user"})
    return webob.Response("pong")


def app_factory(global_conf: Mapping[str, Any], **local_conf: str) -> Any:
    """The paste app factory of :func:`counter_app`."""
    return counter_app


class ClientProbe:
    """Answers ``GET /client`` before the session middleware; passes on the rest.

    The answer tells whether a worker uses an Aerospike client made in its own
    process: the worker's pid, the pid of the process that loaded the
    application (the master under ``--preload``), and the ``id()`` of the
    store's client with the pid of the process it was first seen in. The
    client is noted at load too, so the one a preloading master connected to
    check the store is noted with the master's pid: a worker that kept it
    would answer that pid for its client.
    """

    def __init__(self, app: SessionMiddleware) -> None:
        self.app = app
        self.store = app.manager.store
        self.loaded_in = os.getpid()
        _origin(self.store.client)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/client":
            return self.app(environ, start_response)
        client = self.store.client
        response = webob.Response(
            json={
                "pid": os.getpid(),
                "loaded_in": self.loaded_in,
                "client": id(client),
                "client_made_in": _origin(client),
            }
        )
        response.headers["X-Worker-Pid"] = str(os.getpid())
        return response(environ, start_response)


def _origin(client: Any) -> int:
    return _client_origins.setdefault(id(client), os.getpid())


def client_probe_factory(
    global_conf: Mapping[str, Any], **local_conf: str
) -> Callable[[SessionMiddleware], ClientProbe]:
    """The paste filter factory of :class:`ClientProbe`."""
    return ClientProbe
