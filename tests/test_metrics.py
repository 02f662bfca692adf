"""The store's metrics, counted through the middleware and pushed to a hook."""

from __future__ import annotations

from typing import Any

import pytest
from webtest import TestApp

from aerospike_wsgi_session import AerospikeStore
from aerospike_wsgi_session.metrics import Metrics
from aerospike_wsgi_session.signing import Signer, new_session_id
from aerospike_wsgi_session.testing import ManualClock

from .helpers import SECRET


def counted(store: AerospikeStore) -> dict[str, float]:
    """The counters only, without the latency summaries."""
    snapshot = store.metrics.snapshot()
    return {k: v for k, v in snapshot.items() if not k.startswith("latency.")}


def test_a_request_without_a_cookie_is_a_miss(
    client: TestApp, store: AerospikeStore
) -> None:
    client.get("/get/name")

    assert counted(store) == {"misses.no_cookie": 1}


def test_a_forged_cookie_is_a_bad_signature(
    client: TestApp, store: AerospikeStore
) -> None:
    client.set_cookie("session", "made-up.signature")

    client.get("/get/name")

    assert counted(store) == {"misses.bad_signature": 1}


def test_a_signed_id_without_a_record_is_unknown(
    client: TestApp, store: AerospikeStore
) -> None:
    client.set_cookie("session", Signer(SECRET).sign(new_session_id()))

    client.get("/get/name")

    assert counted(store) == {"loads": 1, "misses.unknown": 1}


def test_a_session_past_its_absolute_timeout_is_expired(
    make_app: Any, store: AerospikeStore
) -> None:
    clock = ManualClock()
    client = make_app(absolute_timeout=60, clock=clock)
    client.get("/set/name?value=ada")
    store.metrics.reset()
    clock.advance(61)

    client.get("/get/name")

    assert counted(store) == {"loads": 1, "misses.expired": 1, "deletes": 1}


def put_bins(client: TestApp, store: AerospikeStore, bins: dict[str, Any]) -> None:
    """Replace the bins of the record behind the client's session cookie."""
    session_id = Signer(SECRET).unsign(client.cookies["session"])
    assert session_id is not None
    key = store.key(Signer(SECRET).record_key(session_id[0]))
    store.client.put(key, bins)


def test_a_record_that_cannot_be_decoded_is_undecodable(
    client: TestApp, store: AerospikeStore
) -> None:
    client.get("/set/name?value=ada")
    put_bins(client, store, {"_session": 1, "data": "not a map"})
    store.metrics.reset()

    client.get("/get/name")

    assert counted(store) == {"loads": 1, "misses.undecodable": 1}


def test_a_value_that_cannot_be_decoded_is_counted_when_read(
    client: TestApp, store: AerospikeStore
) -> None:
    client.get("/set/name?value=ada")
    put_bins(client, store, {"_session": 1, "data": {"name": "{not json"}})
    store.metrics.reset()

    client.get("/get/name")

    assert counted(store) == {"loads": 1, "undecodable_values": 1}


def test_a_visit_counts_its_writes_and_bytes(
    make_app: Any, store: AerospikeStore
) -> None:
    client = make_app(rolling=True, rolling_interval=0, max_age=600)

    client.get("/set/name?value=ada")
    client.get("/set/name?value=grace")
    client.get("/get/name")
    client.get("/invalidate")

    figures = store.metrics.snapshot()
    assert counted(store) == {
        "misses.no_cookie": 1,
        "creates": 1,
        "loads": 3,
        "saves": 1,
        "touches": 1,
        "deletes": 1,
        "bytes_written": figures["bytes_written"],
    }
    assert figures["bytes_written"] > len("name" + '"grace"')
    assert figures["latency.load.count"] == 3
    assert 0 < figures["latency.load.max"] <= figures["latency.load.total"]


def test_the_hook_receives_every_event(make_app: Any, store: AerospikeStore) -> None:
    events: list[tuple[str, str, float]] = []
    store.metrics.hook = lambda kind, name, value: events.append((kind, name, value))
    client = make_app()

    client.get("/set/name?value=ada")
    client.get("/get/name")

    counters = [(name, value) for kind, name, value in events if kind == "counter"]
    timings = [name for kind, name, _ in events if kind == "timing"]
    assert counters[:2] == [("misses.no_cookie", 1), ("creates", 1)]
    assert ("loads", 1) in counters
    assert timings == ["create", "load"]


def test_a_failing_hook_never_breaks_a_request(
    make_app: Any, store: AerospikeStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(kind: str, name: str, value: float) -> None:
        raise RuntimeError("the metrics backend is down")

    store.metrics.hook = broken
    client = make_app()

    assert client.get("/set/name?value=ada").status_int == 200
    assert client.get("/get/name").json == "ada"
    assert "the metrics hook failed" in caplog.text


def test_metrics_reset_forgets_everything() -> None:
    metrics = Metrics()
    metrics.count("loads", 3)
    metrics.time("load", 0.002)

    metrics.reset()

    assert metrics.snapshot() == {}
