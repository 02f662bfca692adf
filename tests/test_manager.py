"""When a session is extended, and what the middleware warns about at start."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any
from wsgiref.validate import validator

import pytest
from webtest import TestApp

from aerospike_wsgi_session import AerospikeStore, SessionMiddleware
from aerospike_wsgi_session.testing import AerospikeServer

from .helpers import OLD_SECRET, SECRET, session_app, set_cookies


def test_rolling_extends_once_its_interval_has_passed(make_app: Any) -> None:
    client = make_app(max_age=600, rolling=True, rolling_interval=1)
    client.get("/set/a?value=1")
    too_soon = set_cookies(client.get("/get/a"))

    # Real time, not a manual clock: the client turns the record's expiry
    # into a TTL with its own clock, so only real seconds age a record.
    time.sleep(1.1)
    due = set_cookies(client.get("/get/a"))

    assert too_soon == {}
    assert due["session"]["max-age"] == "600"
    assert set_cookies(client.get("/get/a")) == {}


@pytest.mark.parametrize("ttl", [0, -1], ids=["namespace-default", "never"])
def test_rolling_without_a_ttl_extends_nothing(
    ttl: int, store: AerospikeStore, caplog: pytest.LogCaptureFixture
) -> None:
    never_expiring = AerospikeStore(
        namespace=store.namespace, set=store.set, client=store.client, ttl=ttl
    )
    with caplog.at_level(logging.WARNING, logger="aerospike_wsgi_session"):
        middleware = SessionMiddleware(
            validator(session_app), never_expiring, secret=SECRET, rolling=True
        )
    client = TestApp(validator(middleware))
    client.get("/set/a?value=1")

    reads = [set_cookies(client.get("/get/a")) for _ in range(3)]

    assert reads == [{}, {}, {}]
    assert never_expiring.metrics.snapshot().get("touches", 0) == 0
    assert "rolling has no effect" in caplog.text


def test_several_secrets_without_a_record_key_secret_warn(
    store: AerospikeStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="aerospike_wsgi_session"):
        SessionMiddleware(session_app, store, secret=[SECRET, OLD_SECRET])
        warned = [record.getMessage() for record in caplog.records]
        SessionMiddleware(
            session_app, store, secret=[SECRET, OLD_SECRET], record_key_secret=SECRET
        )

    assert len(warned) == 1 and "record_key_secret" in warned[0]
    assert len(caplog.records) == 1
    assert SECRET not in caplog.text and OLD_SECRET not in caplog.text


@pytest.fixture
def budgeted(aerospike_server: AerospikeServer) -> Iterator[Any]:
    """A factory of apps on a server of its own, whose latency tests set."""
    store = AerospikeStore(set="budget", hosts=aerospike_server.hosts)

    def make(**options: Any) -> TestApp:
        middleware = SessionMiddleware(
            validator(session_app), store, secret=SECRET, **options
        )
        return TestApp(validator(middleware))

    yield make
    aerospike_server.delay = 0
    store.close()


def test_the_default_budget_fits_a_read_and_a_write(
    budgeted: Any, aerospike_server: AerospikeServer
) -> None:
    client = budgeted()
    client.get("/set/a?value=1")

    aerospike_server.delay = 0.2
    changed = client.get("/set/a?value=2")

    assert changed.status_int == 200


def test_the_calls_of_a_request_share_its_budget(
    budgeted: Any, aerospike_server: AerospikeServer
) -> None:
    client = budgeted(store_budget=0.3)
    client.get("/set/a?value=1")

    # Each call alone fits its own 500 ms timeout; the save gets only what
    # the read left of the request's 300 ms.
    aerospike_server.delay = 0.2
    refused = client.get("/set/a?value=2", status=503)

    assert refused.headers["Retry-After"] == "5"
    assert "session" not in set_cookies(refused)


@pytest.mark.parametrize("budget", [0, -1.0, "1"], ids=["zero", "negative", "text"])
def test_a_bad_budget_is_refused(budget: Any, store: AerospikeStore) -> None:
    with pytest.raises(ValueError, match="store_budget"):
        SessionMiddleware(session_app, store, secret=SECRET, store_budget=budget)
