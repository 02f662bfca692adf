"""Security stories told through the middleware: expiry, planted data, logs, replay."""

from __future__ import annotations

import base64
import json
import logging
import pickle
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
import webob
import webob.dec
from webtest import TestApp

from aerospike_wsgi_session import AerospikeStore
from aerospike_wsgi_session.signing import Signer, new_session_id
from aerospike_wsgi_session.testing import AerospikeServer, ManualClock

from .helpers import OLD_SECRET, SECRET, body_json, login_app, set_cookies

#: What unpickling the planted payload would record.
UNPICKLED: list[str] = []


def note_unpickling(tag: str) -> None:
    UNPICKLED.append(tag)


class Trap:
    """Unpickling this calls a module-level function, found by reference.

    A bound ``list.append`` would not do: pickle copies the list by value,
    so the call would land in a copy and go unseen.
    """

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (note_unpickling, ("unpickled",))


PAYLOAD = pickle.dumps(Trap())
TAGGED_PAYLOAD = json.dumps({"$b": base64.b64encode(PAYLOAD).decode("ascii")})


def record_key(cookie: str) -> str:
    """The record key of the session a cookie value carries."""
    signer = Signer(SECRET)
    verified = signer.unsign(cookie)
    assert verified is not None
    return signer.record_key(verified[0])


@pytest.fixture
def unpickled() -> Iterator[list[str]]:
    UNPICKLED.clear()
    yield UNPICKLED
    UNPICKLED.clear()


def test_a_late_write_keeps_the_record_within_the_absolute_limit(
    make_app: Any, store: AerospikeStore
) -> None:
    # Only the middleware's clock moves: the TTL it sends is what it thinks
    # is left, and Aerospike counts it down on its own clock.
    clock = ManualClock()
    client = make_app(clock=clock, absolute_timeout=100, max_age=3600)
    cookie = set_cookies(client.get("/set/name?value=ada"))["session"].value

    clock.advance(90)
    client.get("/set/name?value=grace")

    _, meta, bins = store.client.get(store.key(record_key(cookie)))
    assert json.loads(bins["data"]["name"]) == "grace"
    assert 0 < meta["ttl"] <= 10


#: What :func:`peek` answers when the planted record is not taken as a session.
NO_SESSION = ["NoneType", False]


@webob.dec.wsgify
def peek(request: webob.Request) -> webob.Response:
    """Answers the type of the session's ``name`` and whether it is the payload."""
    value = request.environ["aerospike.session"].get("name")
    return webob.Response(json=[type(value).__name__, value == PAYLOAD])


def test_the_planted_payload_runs_code_when_unpickled(unpickled: list[str]) -> None:
    pickle.loads(PAYLOAD)

    assert unpickled == ["unpickled"]


@pytest.mark.parametrize(
    ("bins", "seen"),
    [
        pytest.param({"data": {"name": PAYLOAD}}, NO_SESSION, id="bytes-entry"),
        pytest.param({"data": PAYLOAD}, NO_SESSION, id="bytes-bin"),
        pytest.param({"data": {"name": TAGGED_PAYLOAD}}, ["bytes", True], id="tagged"),
    ],
)
def test_a_pickle_planted_in_a_session_record_is_never_unpickled(
    make_app: Any,
    store: AerospikeStore,
    unpickled: list[str],
    bins: dict[str, Any],
    seen: list[Any],
) -> None:
    # Raw bytes are no JSON text: the record reads as no session. Tagged
    # bytes are a session value, handed over as the bytes they are.
    session_id = new_session_id()
    planted = {"_session": 1, **bins}
    store.client.put(store.key(Signer(SECRET).record_key(session_id)), planted)
    client = make_app(peek)
    client.set_cookie("session", Signer(SECRET).sign(session_id))

    response = client.get("/")

    assert response.status_int == 200
    assert body_json(response) == seen
    assert unpickled == []


TAGGED_VALUES: dict[str, Any] = {
    "aware": datetime(2024, 5, 1, 12, 30, 15, 9, tzinfo=timezone(timedelta(hours=2))),
    "naive": datetime(2024, 5, 1, 12, 30, 15, 7),
    "day": date(2024, 5, 1),
    "at": time(8, 15, 0, 42),
    "price": Decimal("19.990"),
    "id": UUID("12345678-1234-5678-1234-567812345678"),
    "raw": b"\x00\xff",
    "tags": {"a", "b"},
    "frozen": frozenset({1, 2}),
    "pair": (1, "two"),
}


@webob.dec.wsgify
def tagged_app(request: webob.Request) -> webob.Response:
    """``/store`` stores every tagged value; any other path compares them."""
    session = request.environ["aerospike.session"]
    if request.path_info == "/store":
        session.update(TAGGED_VALUES)
        return webob.Response("ok")
    found = {key: session.get(key) for key in TAGGED_VALUES}
    return webob.Response(
        json={
            key: [type(found[key]).__name__, found[key] == value]
            for key, value in TAGGED_VALUES.items()
        }
    )


def test_every_tagged_type_comes_back_as_itself(make_app: Any) -> None:
    client = make_app(tagged_app)
    client.get("/store")

    compared = body_json(client.get("/compare"))

    expected = {key: [type(v).__name__, True] for key, v in TAGGED_VALUES.items()}
    assert compared == expected


@webob.dec.wsgify
def no_store_app(request: webob.Request) -> webob.Response:
    request.environ["aerospike.session"]["name"] = "ada"
    response = webob.Response("ok")
    response.headers["Cache-Control"] = "no-store"
    return response


def test_a_no_store_response_stays_no_store(make_app: Any) -> None:
    response = make_app(no_store_app).get("/")

    [cache_control] = response.headers.getall("Cache-Control")
    assert [part.strip() for part in cache_control.split(",")] == ["no-store"]
    assert list(set_cookies(response)) == ["session"]


def test_a_user_index_made_at_deployment_serves_log_out_everywhere(
    make_app: Any, store: AerospikeStore
) -> None:
    store.create_user_index()
    store.create_user_index()
    laptop, phone = make_app(login_app), make_app(login_app)
    laptop.get("/?user=alice")
    phone.get("/?user=alice")

    assert store.destroy_user("alice") == 2

    names = []
    for browser in (laptop, phone):
        reader = make_app()
        reader.cookiejar = browser.cookiejar
        names.append(body_json(reader.get("/get/name")))
    assert names == [None, None]
    assert store.user_sessions("alice") == []


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """The formatted log, tracebacks included, and every record's arguments."""
    return caplog.text + "".join(repr(record.args) for record in caplog.records)


def test_the_secret_never_reaches_the_log(
    client: TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aerospike_wsgi_session")
    cookie = set_cookies(client.get("/set/name?value=ada"))["session"].value
    client.get("/regenerate")
    forged = Signer(OLD_SECRET).sign(new_session_id())
    client.get("/get/name", headers={"Cookie": f"session={forged}"})

    logged = everything_logged(caplog)

    assert len(caplog.records) > 0
    for secret in (SECRET, cookie, cookie.partition(".")[0], forged):
        assert secret not in logged


def test_the_secret_never_reaches_the_log_of_a_503(
    make_app: Any,
    server_store: AerospikeStore,
    aerospike_server: AerospikeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aerospike_wsgi_session")
    client = make_app(store=server_store)
    cookie = set_cookies(client.get("/set/name?value=ada"))["session"].value
    aerospike_server.fail_next(1, 1, commands="read")

    response = client.get("/get/name", expect_errors=True)

    assert response.status_int == 503
    assert logging.ERROR in {record.levelno for record in caplog.records}
    for secret in (SECRET, cookie, cookie.partition(".")[0]):
        assert secret not in everything_logged(caplog)


@pytest.mark.parametrize(
    ("path", "kept"), [("/invalidate", None), ("/regenerate", "ada")]
)
def test_a_retired_cookie_replayed_opens_only_an_empty_session(
    client: TestApp, make_app: Any, store: AerospikeStore, path: str, kept: Any
) -> None:
    old = set_cookies(client.get("/set/name?value=ada"))["session"].value
    client.get(path)
    thief = make_app()
    thief.set_cookie("session", old)

    assert body_json(thief.get("/keys")) == []
    assert set_cookies(thief.get("/set/name?value=eve"))["session"].value != old
    assert store.load(record_key(old)) is None
    assert body_json(client.get("/get/name")) == kept
