"""The middleware when Aerospike fails: down, failing, and back again.

These tests steer the embedded server, so they skip on a real cluster.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from webtest import TestApp

from aerospike_wsgi_session import AerospikeStore, SessionUnavailableError
from aerospike_wsgi_session.testing import AerospikeServer

from .helpers import body_json


@pytest.fixture
def outage_client(make_app: Any, server_store: AerospikeStore) -> TestApp:
    return make_app(store=server_store)


def until_served(client: TestApp, path: str, seconds: float = 10.0) -> Any:
    """Retry a request until the client has re-tended the restarted server."""
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(path, expect_errors=True)
        if response.status_int != 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_untouched_requests_do_not_reach_aerospike(
    outage_client: TestApp, aerospike_server: AerospikeServer
) -> None:
    outage_client.get("/set/a?value=1")
    before = sum(aerospike_server.stats.values()) - aerospike_server.stats["info"]

    for _ in range(5):
        outage_client.get("/untouched")

    after = sum(aerospike_server.stats.values()) - aerospike_server.stats["info"]
    assert after == before


def test_forged_cookie_costs_no_aerospike_call(
    outage_client: TestApp, aerospike_server: AerospikeServer
) -> None:
    outage_client.set_cookie("session", "forged.value")

    outage_client.get("/get/a")

    assert aerospike_server.stats["get"] == 0


def test_unchanged_session_costs_one_read(
    outage_client: TestApp, aerospike_server: AerospikeServer
) -> None:
    outage_client.get("/set/a?value=1")
    aerospike_server.stats.clear()

    outage_client.get("/get/a")

    assert dict(aerospike_server.stats) == {"get": 1}


def test_server_down_at_load_answers_503(
    outage_client: TestApp, aerospike_server: AerospikeServer
) -> None:
    outage_client.get("/set/name?value=ada")
    aerospike_server.stop()

    response = outage_client.get("/get/name", expect_errors=True)

    assert response.status_int == 503
    assert response.headers["Retry-After"] == "5"
    assert "Set-Cookie" not in response.headers
    assert "127.0.0.1" not in response.text
    assert "Traceback" not in response.text


def test_server_down_at_save_answers_503_and_loses_nothing(
    outage_client: TestApp, aerospike_server: AerospikeServer
) -> None:
    outage_client.get("/set/name?value=ada")
    aerospike_server.fail_next(1, 9, commands="write")

    response = outage_client.get("/set/name?value=grace", expect_errors=True)

    assert response.status_int == 503
    assert body_json(outage_client.get("/get/name")) == "ada"


def test_sessions_come_back_with_the_server(
    outage_client: TestApp, aerospike_server: AerospikeServer
) -> None:
    outage_client.get("/set/name?value=ada")

    aerospike_server.stop()
    assert outage_client.get("/get/name", expect_errors=True).status_int == 503
    aerospike_server.start()

    assert body_json(until_served(outage_client, "/get/name")) == "ada"


def test_degrade_goes_on_without_a_session(
    make_app: Any, server_store: AerospikeStore, aerospike_server: AerospikeServer
) -> None:
    client = make_app(store=server_store, on_store_error="degrade")
    client.get("/set/name?value=ada")
    aerospike_server.stop()

    response = client.get("/get/name")

    assert body_json(response) is None
    assert "Set-Cookie" not in response.headers
    with pytest.raises(SessionUnavailableError):
        client.get("/set/name?value=grace")


def test_degrade_keeps_the_session_for_after_the_blip(
    make_app: Any, server_store: AerospikeStore, aerospike_server: AerospikeServer
) -> None:
    client = make_app(store=server_store, on_store_error="degrade")
    client.get("/set/name?value=ada")

    # Two failures: the default read policy retries once.
    aerospike_server.fail_next(2, 9, commands="read")
    assert body_json(client.get("/get/name")) is None

    assert body_json(client.get("/get/name")) == "ada"
