"""The middleware as a WSGI citizen: when headers go out, bodies, close()."""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
import webob
import webob.dec

from aerospike_wsgi_session import (
    AerospikeStore,
    SessionMiddleware,
    SessionTooLargeError,
)
from aerospike_wsgi_session.signing import Signer
from aerospike_wsgi_session.testing import AerospikeServer

from .helpers import SECRET


def stored(store: AerospikeStore, cookie: str) -> dict[str, Any] | None:
    signer = Signer(SECRET)
    verified = signer.unsign(cookie)
    assert verified is not None
    record = store.load(signer.record_key(verified[0]))
    return None if record is None else record.data


class Exchange:
    """Drives a WSGI app the way a server does, step by step."""

    def __init__(self, app: Any, cookie: str | None = None, path: str = "/") -> None:
        self.environ = make_environ(path)
        if cookie:
            self.environ["HTTP_COOKIE"] = f"session={cookie}"
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.written: list[bytes] = []
        self.body = app(self.environ, self.start_response)

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        self.status, self.headers = status, headers
        return self.written.append

    def cookie(self) -> str:
        values = [value for name, value in self.headers if name == "Set-Cookie"]
        assert len(values) == 1
        return values[0].split(";")[0].partition("=")[2]


def make_environ(path: str = "/") -> dict[str, Any]:
    environ = {"PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": ""}
    setup_testing_defaults(environ)
    return environ


def wrap(app: Any, store: AerospikeStore, **options: Any) -> Any:
    return validator(SessionMiddleware(validator(app), store, secret=SECRET, **options))


def wrap_outside(app: Any, store: AerospikeStore, **options: Any) -> Any:
    # Only the middleware is validated: wsgiref's validator would hand it an
    # iterator for the app's list, and these tests are about plain lists.
    return validator(SessionMiddleware(app, store, secret=SECRET, **options))


def closing_app(chunk: Callable[[dict[str, Any]], bytes], closes: list[str]) -> Any:
    """An app whose body is one chunk ``chunk(environ)``, noting each close()."""

    class Body:
        def __init__(self, environ: dict[str, Any]) -> None:
            self.environ = environ

        def __iter__(self) -> Iterator[bytes]:
            yield chunk(self.environ)

        def close(self) -> None:
            closes.append("closed")

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body(environ)

    return app


def counter_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    session = environ["aerospike.session"]
    session["count"] = session.get("count", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"counted "
    yield str(session["count"]).encode()


def test_record_is_durable_before_headers_go_out(store: AerospikeStore) -> None:
    seen: list[Any] = []
    app = wrap(counter_app, store)

    def exchange_start(status: str, headers: Any, exc_info: Any = None) -> Any:
        cookie = next(v for n, v in headers if n == "Set-Cookie")
        seen.append(stored(store, cookie.split(";")[0].partition("=")[2]))
        return lambda data: None

    body = app(make_environ(), exchange_start)
    chunks = list(body)
    body.close()

    assert chunks == [b"counted ", b"1"]
    assert seen == [{"count": 1}]


def test_streaming_body_is_not_buffered(store: AerospikeStore) -> None:
    produced: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        environ["aerospike.session"]["streamed"] = True
        start_response("200 OK", [("Content-Type", "text/plain")])
        for number in range(3):
            produced.append(number)
            yield b"%d" % number

    exchange = Exchange(wrap(app, store))
    chunks = iter(exchange.body)

    assert next(chunks) == b"0"
    assert produced == [0]
    assert exchange.status == "200 OK"
    assert list(chunks) == [b"1", b"2"]
    exchange.body.close()


def test_empty_chunks_before_the_body_are_skipped(store: AerospikeStore) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""
        environ["aerospike.session"]["late"] = "but before the body"
        yield b"body"

    exchange = Exchange(wrap(app, store))
    chunks = list(exchange.body)
    exchange.body.close()

    assert chunks == [b"body"]
    assert stored(store, exchange.cookie()) == {"late": "but before the body"}


def test_write_callable_saves_before_the_first_write(store: AerospikeStore) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["aerospike.session"]["via"] = "write"
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written")
        return []

    exchange = Exchange(wrap(app, store))
    exchange.body.close()

    assert exchange.written == [b"written"]
    assert stored(store, exchange.cookie()) == {"via": "write"}


def test_exc_info_replaces_headers_not_sent_yet(store: AerospikeStore) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["aerospike.session"]["tried"] = True
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain")],
                sys.exc_info(),
            )
        return [b"error page"]

    exchange = Exchange(wrap(app, store))
    body = list(exchange.body)
    exchange.body.close()

    assert exchange.status == "500 Internal Server Error"
    assert body == [b"error page"]
    assert stored(store, exchange.cookie()) == {"tried": True}


def test_exc_info_after_the_headers_went_out_is_raised(store: AerospikeStore) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        environ["aerospike.session"]["tried"] = True
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"half a page"
        try:
            raise ValueError("boom")
        except ValueError:
            headers = [("Content-Type", "text/plain")]
            start_response("500 Internal Server Error", headers, sys.exc_info())

    exchange = Exchange(wrap(app, store))
    chunks = iter(exchange.body)

    assert next(chunks) == b"half a page"
    with pytest.raises(ValueError, match="boom"):
        next(chunks)
    exchange.body.close()
    assert exchange.status == "200 OK"


def test_generator_calling_start_response_lazily(store: AerospikeStore) -> None:
    exchange = Exchange(wrap(counter_app, store))

    assert exchange.status is None
    assert b"".join(exchange.body) == b"counted 1"
    exchange.body.close()
    assert exchange.status == "200 OK"


def test_close_is_called_exactly_once(store: AerospikeStore) -> None:
    closes: list[str] = []

    def fill(environ: dict[str, Any]) -> bytes:
        environ["aerospike.session"]["x"] = 1
        return b"body"

    exchange = Exchange(wrap(closing_app(fill, closes), store))
    list(exchange.body)
    exchange.body.close()
    exchange.body.close()

    assert closes == ["closed"]


def test_store_down_at_the_first_chunk_closes_once(
    make_app: Any, server_store: AerospikeStore, aerospike_server: AerospikeServer
) -> None:
    closes: list[str] = []

    def read(environ: dict[str, Any]) -> bytes:
        return str(environ["aerospike.session"].get("name")).encode()

    client = make_app(store=server_store)
    client.get("/set/name?value=ada")
    client.app = make_app(closing_app(read, closes), store=server_store).app
    aerospike_server.stop()

    assert client.get("/", status=503).headers["Retry-After"] == "5"
    assert closes == ["closed"]


def test_oversized_first_chunk_closes_once(make_app: Any) -> None:
    closes: list[str] = []

    def fill(environ: dict[str, Any]) -> bytes:
        environ["aerospike.session"]["big"] = "x" * (2 << 20)
        return b"body"

    client = make_app(closing_app(fill, closes))
    with pytest.raises(SessionTooLargeError):
        client.get("/")

    assert closes == ["closed"]
    assert client.cookies == {}


def test_change_after_headers_is_saved_at_close(store: AerospikeStore) -> None:
    app = wrap(counter_app, store)
    first = Exchange(app)
    list(first.body)
    first.body.close()

    def late_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"headers are out"
        environ["aerospike.session"]["late"] = True

    second = Exchange(wrap(late_app, store), cookie=first.cookie())
    list(second.body)
    second.body.close()

    assert stored(store, first.cookie()) == {"count": 1, "late": True}


def test_change_after_headers_to_a_new_session_is_logged(
    store: AerospikeStore, caplog: Any
) -> None:
    def late_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"headers are out"
        environ["aerospike.session"]["late"] = True

    exchange = Exchange(wrap(late_app, store))
    list(exchange.body)
    exchange.body.close()

    assert "Set-Cookie" not in dict(exchange.headers)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([m for m in warnings if "after the response headers" in m]) == 1


def test_list_body_passes_through_untouched(store: AerospikeStore) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"plain"]

    exchange = Exchange(wrap_outside(app, store))

    assert exchange.headers == [("Content-Type", "text/plain")]
    assert list(exchange.body) == [b"plain"]
    exchange.body.close()


def test_list_body_of_a_used_session_is_saved_at_return(store: AerospikeStore) -> None:
    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        request.environ["aerospike.session"]["x"] = 1
        return webob.Response("ok")

    exchange = Exchange(wrap_outside(app, store))

    assert exchange.status == "200 OK"
    assert stored(store, exchange.cookie()) == {"x": 1}
    exchange.body.close()


def write_then_change(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Write the body through write(), then change the session, then return []."""
    session = environ["aerospike.session"]
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"x")
    session["late"] = 1
    return []


def test_change_after_write_with_a_list_body_is_saved(store: AerospikeStore) -> None:
    first = Exchange(wrap(counter_app, store))
    list(first.body)
    first.body.close()

    second = Exchange(wrap_outside(write_then_change, store), cookie=first.cookie())
    list(second.body)
    second.body.close()

    assert second.written == [b"x"]
    assert stored(store, first.cookie()) == {"count": 1, "late": 1}


def test_change_after_write_to_a_new_session_is_logged(
    store: AerospikeStore, caplog: Any
) -> None:
    exchange = Exchange(wrap_outside(write_then_change, store))
    list(exchange.body)
    exchange.body.close()

    assert [name for name, _ in exchange.headers if name == "Set-Cookie"] == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([m for m in warnings if "after the response headers" in m]) == 1


def test_app_exception_saves_nothing(make_app: Any) -> None:
    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        request.environ["aerospike.session"]["half"] = "done"
        raise RuntimeError("the app failed")

    client = make_app(app)
    with pytest.raises(RuntimeError):
        client.get("/")

    assert client.cookies == {}


class Probe:
    """Something of the request's own, to see when the request is freed."""


def failing_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["aerospike.session"]["half"] = "done"
    raise RuntimeError("the app failed")


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(closing_app(lambda environ: b"x", []), id="untouched"),
        pytest.param(counter_app, id="iterator"),
        pytest.param(write_then_change, id="write"),
        pytest.param(failing_app, id="exception"),
    ],
)
def test_a_request_is_freed_as_soon_as_it_is_done(
    app: Any, store: AerospikeStore
) -> None:
    middleware = SessionMiddleware(app, store, secret=SECRET)
    environ = make_environ()
    environ["probe"] = Probe()
    probe = weakref.ref(environ["probe"])

    # Without the garbage collector, only what holds no cycle is freed.
    gc.disable()
    try:
        with contextlib.suppress(RuntimeError):
            body = middleware(environ, lambda *args: lambda data: None)
            list(body)
            getattr(body, "close", lambda: None)()
            del body
        del environ
        freed = probe() is None
    finally:
        gc.enable()

    assert freed


def test_a_session_first_used_after_its_response_still_loads(
    store: AerospikeStore,
) -> None:
    first = Exchange(wrap(counter_app, store))
    list(first.body)
    first.body.close()
    kept: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        kept.append(environ["aerospike.session"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    later = Exchange(wrap_outside(app, store), cookie=first.cookie())
    later.body.close()

    assert kept[0]["count"] == 1
