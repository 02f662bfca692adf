"""The store's self-check, and the middleware's ``check_at_startup``.

Each misconfiguration gets its own message. The namespaces that are wrong on
purpose live on embedded servers of their own, so those tests skip on a
real cluster.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from aerospike_wsgi_session import AerospikeStore, CheckError, SessionMiddleware
from aerospike_wsgi_session.selfcheck import PROBE_KEY
from aerospike_wsgi_session.testing import AerospikeServer, NamespaceConfig

from .helpers import SECRET, session_app


@pytest.fixture
def store_on(aerospike_server: AerospikeServer) -> Iterator[Any]:
    """``store_on(namespace_config, **options)``: a store on a server of its own."""
    servers: list[AerospikeServer] = []
    stores: list[AerospikeStore] = []

    def build(config: NamespaceConfig, **options: Any) -> AerospikeStore:
        servers.append(AerospikeServer(namespaces=[config]).start())
        stores.append(AerospikeStore(hosts=servers[-1].hosts, **options))
        return stores[-1]

    yield build
    for store in stores:
        store.close()
    for server in servers:
        server.stop()


def test_check_describes_a_fit_namespace(store: AerospikeStore) -> None:
    found = store.check(ttl=600)

    assert found["namespace"] == store.namespace
    assert found["set"] == store.set
    assert found["ttl_writes"] is True
    assert store.max_record_size == found["max_record_size"] >= 16 * 1024


def test_check_leaves_no_probe_record(store: AerospikeStore) -> None:
    store.check(ttl=600)

    _, meta = store.client.exists(store.key(PROBE_KEY))
    assert meta is None


def test_missing_namespace(store: AerospikeStore) -> None:
    missing = AerospikeStore(namespace="nowhere", set=store.set, client=store.client)

    with pytest.raises(CheckError, match="namespace 'nowhere' does not exist"):
        missing.check()


def test_unreachable_cluster() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = AerospikeStore(hosts=[("127.0.0.1", port)])

    with pytest.raises(CheckError, match="cannot reach Aerospike"):
        store.check()


def test_namespace_without_expiry_refuses_ttls(store_on: Any) -> None:
    store = store_on(NamespaceConfig(nsup_period=0), ttl=600)

    with pytest.raises(CheckError, match=r"refuses records with a TTL.*nsup-period"):
        store.check()


@pytest.mark.parametrize(
    ("config", "ttl"),
    [
        pytest.param(NamespaceConfig(nsup_period=0), 0, id="no-ttl-sent"),
        pytest.param(NamespaceConfig(nsup_period=0), -1, id="never-expire"),
        pytest.param(
            NamespaceConfig(nsup_period=0, allow_ttl_without_nsup=True),
            600,
            id="allowed-without-nsup",
        ),
    ],
)
def test_namespace_without_expiry_is_fine_without_ttls(
    store_on: Any, config: NamespaceConfig, ttl: int
) -> None:
    store = store_on(config, ttl=ttl)

    assert store.check()["nsup_period"] == 0


def test_record_size_limit_too_small(store_on: Any) -> None:
    store = store_on(NamespaceConfig(max_record_size=8192))

    with pytest.raises(CheckError, match="limits records to 8192 bytes"):
        store.check()


def test_check_at_startup_refuses_a_bad_namespace(store: AerospikeStore) -> None:
    missing = AerospikeStore(namespace="nowhere", client=store.client)

    with pytest.raises(CheckError, match="does not exist"):
        SessionMiddleware(session_app, missing, SECRET, check_at_startup=True)


def test_check_at_startup_tests_the_cookie_ttl(store_on: Any) -> None:
    store = store_on(NamespaceConfig(nsup_period=0))

    SessionMiddleware(session_app, store, SECRET, check_at_startup=True)
    with pytest.raises(CheckError, match="refuses records with a TTL"):
        SessionMiddleware(
            session_app, store, SECRET, max_age=3600, check_at_startup=True
        )


def test_no_check_without_check_at_startup(store_on: Any) -> None:
    store = store_on(NamespaceConfig(max_record_size=8192))

    SessionMiddleware(session_app, store, SECRET, max_age=3600)

    assert store.max_record_size is None
