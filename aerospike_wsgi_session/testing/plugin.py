"""Pytest fixtures for code that talks to Aerospike.

By default one embedded :class:`AerospikeServer` serves the whole test
session. Set ``AEROSPIKE_HOSTS`` (``"127.0.0.1:3000"`` or
``"h1:3000,h2:3000"``) to run the same tests against a real cluster, and
``AEROSPIKE_NAMESPACE`` (default ``test``) to choose the namespace there.

Fixtures:

- ``aerospike_hosts`` (session): the seed list, ``[(host, port), ...]``.
- ``aerospike_namespace`` (session): the namespace name.
- ``aerospike_client`` (session): a connected client, closed at the end.
- ``aerospike_set`` (function): a set name unique to the test; its records
  are truncated afterwards (see :func:`truncate`).
- ``aerospike_server`` (function): a fresh embedded server with a
  :class:`ManualClock`, for fault injection and time travel; skipped when
  ``AEROSPIKE_HOSTS`` is set.
- ``aerospike_connect`` (function): ``connect(hosts=None, **config)`` returns
  a new client (default: the session backend); ``config`` entries are merged
  into the client configuration as given, with no timeouts added; every
  client is closed at teardown.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aerospike
import pytest

from ..store import parse_hosts
from ..truncate import truncate
from .clock import ManualClock
from .server import AerospikeServer

logger = logging.getLogger(__name__)

HOSTS_VARIABLE = "AEROSPIKE_HOSTS"
NAMESPACE_VARIABLE = "AEROSPIKE_NAMESPACE"

Hosts = list[tuple[str, int]]
Connect = Callable[..., Any]


@pytest.fixture(scope="session")
def aerospike_hosts() -> Iterator[Hosts]:
    """The seed list of the Aerospike backend of this test session."""
    configured = os.environ.get(HOSTS_VARIABLE, "").strip()
    if configured:
        yield parse_hosts(configured)
        return
    with AerospikeServer() as server:
        yield server.hosts


@pytest.fixture(scope="session")
def aerospike_namespace() -> str:
    """The namespace the tests use."""
    return os.environ.get(NAMESPACE_VARIABLE, "test")


@pytest.fixture(scope="session")
def aerospike_client(aerospike_hosts: Hosts) -> Iterator[Any]:
    """A client connected to the session backend, closed at the end."""
    client = aerospike.client({"hosts": aerospike_hosts})
    yield client
    client.close()


@pytest.fixture
def aerospike_set(aerospike_client: Any, aerospike_namespace: str) -> Iterator[str]:
    """A set name unique to this test; its records are removed afterwards."""
    name = f"t{uuid.uuid4().hex[:20]}"
    yield name
    truncate(aerospike_client, aerospike_namespace, name)


@pytest.fixture
def aerospike_server() -> Iterator[AerospikeServer]:
    """A fresh embedded server on a :class:`ManualClock`, stopped afterwards."""
    if os.environ.get(HOSTS_VARIABLE, "").strip():
        pytest.skip(f"needs the embedded server, but {HOSTS_VARIABLE} is set")
    with AerospikeServer(clock=ManualClock()) as server:
        yield server


@pytest.fixture
def aerospike_connect(aerospike_hosts: Hosts) -> Iterator[Connect]:
    """A factory of clients, ``connect(hosts=None, **config)``.

    ``hosts`` defaults to the session backend; ``config`` is merged into the
    client configuration unchanged. Every client is closed at teardown.
    """
    clients: list[Any] = []

    def connect(hosts: Hosts | None = None, **config: Any) -> Any:
        client = aerospike.client({"hosts": hosts or aerospike_hosts, **config})
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
