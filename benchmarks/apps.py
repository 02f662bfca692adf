"""The one small application the benchmarks run, and the systems around it.

Every system answers the same paths, one per scenario:

``/untouched``
    answers without looking at the session.
``/read``
    reads the key ``user``.
``/write``
    adds one to the counter ``n``.
``/new``
    stores ``user`` in a session that has no cookie yet.
``/big``
    reads ``k0`` and adds one to ``n`` (on a big session).
``/change?keys=N``
    sets the keys ``c0`` to ``c<N-1>`` to new values.
``/seed``
    stores every item of ``environ["bench.seed"]``, to prepare a session.

The systems are the application with no session at all (the floor of
``untouched``), behind this project's middleware, written by hand with the
``aerospike`` client making the calls the store makes (the floor of the
store), and behind Beaker's middleware with its memory and Redis backends.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aerospike
from aerospike_helpers.operations import map_operations

from aerospike_wsgi_session import AerospikeStore, SessionMiddleware
from aerospike_wsgi_session.store import build_client_config

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SECRET = "benchmark-secret-0123456789abcdef0123456789"
COOKIE = "session"
NAMESPACE = os.environ.get("AEROSPIKE_NAMESPACE", "test")
SET = "bench"
#: Records the benchmarks write expire by themselves, on a real cluster too.
TTL = 600

OK = [b"ok"]
TEXT = [("Content-Type", "text/plain")]

SessionOf = Callable[["WSGIEnvironment"], MutableMapping[str, Any]]


def small_session() -> dict[str, Any]:
    """The session of ``untouched``, ``read`` and ``write``: about 100 bytes."""
    return {"user": "alice", "n": 0, "roles": ["reader", "writer"]}


def sized_session(size: int, value_size: int = 1000) -> dict[str, Any]:
    """A session of about ``size`` bytes, in values of ``value_size`` bytes."""
    count = max(1, size // value_size)
    data: dict[str, Any] = {f"k{i}": "x" * value_size for i in range(count)}
    data.update(user="alice", n=0)
    return data


def bare_app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """The application with no session: the floor of ``untouched``."""
    start_response("200 OK", list(TEXT))
    return OK


def session_app(session_of: SessionOf, save: bool = False) -> WSGIApplication:
    """The application, finding its session with ``session_of``.

    :param save: call ``session.save()`` after a change, as Beaker needs.
    """

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path != "/untouched":
            session = session_of(environ)
            changed = _serve(path, environ, session)
            if changed and save:
                session.save()  # type: ignore[attr-defined]
        start_response("200 OK", list(TEXT))
        return OK

    return app


def _serve(path: str, environ: WSGIEnvironment, session: Any) -> bool:
    """Do what ``path`` asks of ``session``; whether it changed anything."""
    if path == "/read":
        _ = session["user"]
        return False
    if path == "/write":
        session["n"] = session.get("n", 0) + 1
    elif path == "/new":
        session["user"] = "alice"
    elif path == "/big":
        session["n"] = session["n"] + len(session["k0"])
    elif path == "/change":
        stamp = time.perf_counter_ns()
        for i in range(_keys(environ)):
            session[f"c{i}"] = stamp
    elif path == "/seed":
        session.update(environ["bench.seed"])
    return True


def _keys(environ: WSGIEnvironment) -> int:
    return int(environ.get("QUERY_STRING", "keys=1").partition("=")[2])


class FloorApp:
    """The application doing by hand what the middleware does: the store's floor.

    The cookie is parsed with string methods and its HMAC checked directly;
    records have the bins the store writes (a map bin of JSON texts, the
    format marker, the creation time) under the session id itself, and the
    Aerospike calls are the store's: a ``get`` to load, an update-only
    ``operate`` with ``map_put_items`` of the changed entries to save, a
    create-only ``put`` for a new session.
    """

    def __init__(self, client_config: dict[str, Any]) -> None:
        self._config = client_config
        self._client: Any = None
        self._pid = 0
        self._key = SECRET.encode()
        self._update = {"exists": aerospike.POLICY_EXISTS_UPDATE, "ttl": TTL}
        self._create = {"exists": aerospike.POLICY_EXISTS_CREATE, "ttl": TTL}

    @property
    def client(self) -> Any:
        """The client of this process (a forked worker makes its own)."""
        if self._client is None or self._pid != os.getpid():
            self._client = aerospike.client(self._config)
            self._pid = os.getpid()
        return self._client

    def close(self) -> None:
        """Close the client, before a fork."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        headers = list(TEXT)
        if path in ("/new", "/seed"):
            data = {"user": "alice"} if path == "/new" else environ["bench.seed"]
            headers += self._create_session(data)
        elif path != "/untouched":
            session_id = self._verify(environ.get("HTTP_COOKIE", ""))
            if session_id is None:
                start_response("403 Forbidden", headers)
                return [b"bad cookie"]
            self._use(session_id, path, environ)
            headers.append(("Vary", "Cookie"))
        start_response("200 OK", headers)
        return OK

    def _verify(self, header: str) -> str | None:
        value = header.partition(COOKIE + "=")[2].partition(";")[0]
        session_id, _, signature = value.partition(".")
        if hmac.compare_digest(self._sign(session_id), signature):
            return session_id
        return None

    def _sign(self, session_id: str) -> str:
        digest = hmac.digest(self._key, session_id.encode(), "sha256")
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def _use(self, session_id: str, path: str, environ: WSGIEnvironment) -> None:
        key = (NAMESPACE, SET, session_id)
        _, _, bins = self.client.get(key)
        texts = bins["data"]
        if path == "/read":
            json.loads(texts["user"])
            return
        if path == "/write":
            changed = {"n": json.dumps(json.loads(texts["n"]) + 1)}
        elif path == "/big":
            n = json.loads(texts["n"]) + len(json.loads(texts["k0"]))
            changed = {"n": json.dumps(n)}
        else:
            stamp = json.dumps(time.perf_counter_ns())
            changed = {f"c{i}": stamp for i in range(_keys(environ))}
        ops = [map_operations.map_put_items("data", changed)]
        self.client.operate(key, ops, policy=self._update)

    def _create_session(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        session_id = secrets.token_urlsafe(32)
        texts = {key: json.dumps(value) for key, value in data.items()}
        bins = {"data": texts, "_session": 1, "_created": int(time.time())}
        self.client.put((NAMESPACE, SET, session_id), bins, policy=self._create)
        cookie = f"{COOKIE}={session_id}.{self._sign(session_id)}"
        attributes = "; Path=/; HttpOnly; SameSite=Lax"
        return [
            ("Vary", "Cookie"),
            ("Set-Cookie", cookie + attributes),
            ("Cache-Control", "private"),
        ]


@dataclass
class System:
    """One system under test: a WSGI application and how to let go of it.

    :param name: the name shown in the tables.
    :param app: the WSGI application.
    :param close: closes its clients (before a fork, or at the end).
    """

    name: str
    app: WSGIApplication
    close: Callable[[], None]


def middleware_system(client_config: dict[str, Any]) -> System:
    """The application behind this project's middleware, default options."""
    store = AerospikeStore(namespace=NAMESPACE, set=SET, ttl=TTL, **client_config)
    app = session_app(lambda environ: environ["aerospike.session"])
    return System("middleware", SessionMiddleware(app, store, SECRET), store.close)


def floor_system(client_config: dict[str, Any]) -> System:
    """The application making the store's Aerospike calls by hand."""
    floor = FloorApp(build_client_config(client_config))
    return System("store floor", floor, floor.close)


def beaker_system(redis_url: str | None = None) -> System:
    """The application behind Beaker's middleware, default options.

    :param redis_url: use Beaker's Redis backend at this URL; ``None`` for
        its memory backend.
    """
    from beaker.middleware import (  # type: ignore[import-untyped]
        SessionMiddleware as BeakerMiddleware,
    )

    options: dict[str, Any] = {"key": COOKIE, "secret": SECRET, "httponly": True}
    if redis_url is None:
        options["type"] = "memory"
    else:
        options.update(type="ext:redis", url=redis_url, timeout=TTL)
    app = session_app(lambda environ: environ["beaker.session"], save=True)
    name = "beaker memory" if redis_url is None else "beaker redis"
    return System(name, BeakerMiddleware(app, **options), lambda: None)


def bare_system() -> System:
    """The application with no session middleware at all."""
    return System("bare app", bare_app, lambda: None)


def environ_for(
    path: str, cookie: str | None = None, query: str = ""
) -> dict[str, Any]:
    """A minimal GET environ for ``path``, with the session cookie if given."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    return environ


def call(app: WSGIApplication, environ: dict[str, Any]) -> tuple[str, list[Any]]:
    """Run one request through ``app``; return its status and headers."""
    seen: list[Any] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        seen[:] = [status, headers]
        return None

    body = app(environ, start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return seen[0], seen[1]


def seed(app: WSGIApplication, data: dict[str, Any]) -> str:
    """Store ``data`` in a new session of ``app``; return its ``Cookie`` header."""
    environ = environ_for("/seed")
    environ["bench.seed"] = data
    status, headers = call(app, environ)
    cookies = [value for name, value in headers if name.lower() == "set-cookie"]
    if not status.startswith("200") or not cookies:
        raise RuntimeError(f"seeding a session failed: {status}")
    return str(cookies[0]).split(";")[0]


def build_system(name: str, client_config: dict[str, Any], redis_url: str) -> System:
    """The system called ``name`` (one of :data:`SYSTEM_NAMES`)."""
    if name == "bare app":
        return bare_system()
    if name == "middleware":
        return middleware_system(client_config)
    if name == "store floor":
        return floor_system(client_config)
    return beaker_system(redis_url if name == "beaker redis" else None)


SYSTEM_NAMES = (
    "bare app",
    "middleware",
    "store floor",
    "beaker memory",
    "beaker redis",
)


def http_app(name: str) -> WSGIApplication:
    """The system ``name`` for gunicorn, with its sessions seeded.

    Run with ``--preload``: the sessions are seeded once in the arbiter, so
    that every worker knows them (Beaker's memory backend included), and the
    clients are closed before the fork. The settings come from the
    environment: ``BENCH_CLIENT_CONFIG`` (JSON), ``BENCH_REDIS_URL``, and
    ``BENCH_COOKIES``, the file the cookies are written to as JSON.
    """
    config = json.loads(os.environ["BENCH_CLIENT_CONFIG"])
    system = build_system(name, config, os.environ.get("BENCH_REDIS_URL", ""))
    cookies = {}
    if name != "bare app":
        cookies["small"] = seed(system.app, small_session())
        cookies["big"] = seed(system.app, sized_session(50_000))
    system.close()
    with open(os.environ["BENCH_COOKIES"], "w", encoding="utf-8") as out:
        json.dump(cookies, out)
    return system.app
