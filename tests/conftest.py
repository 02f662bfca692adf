"""Fixtures shared by the middleware and store tests.

The Aerospike fixtures (``aerospike_client``, ``aerospike_set``,
``aerospike_server``...) come from the package's own pytest plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest
from webtest import TestApp

from aerospike_wsgi_session import AerospikeStore, SessionMiddleware
from aerospike_wsgi_session.testing import AerospikeServer

from .deployment import Backend
from .helpers import SECRET, session_app


@pytest.fixture
def store(
    aerospike_client: Any, aerospike_namespace: str, aerospike_set: str
) -> AerospikeStore:
    """A store on the test's own set, sharing the session's client."""
    return AerospikeStore(
        namespace=aerospike_namespace, set=aerospike_set, client=aerospike_client
    )


MakeApp = Callable[..., TestApp]


@pytest.fixture
def make_app(store: AerospikeStore) -> MakeApp:
    """Build a WebTest app: the given app behind the middleware, validated.

    Both the application and the middleware are wrapped in
    ``wsgiref.validate.validator``.
    """

    def make(
        app: Any = session_app, *, store: AerospikeStore = store, **options: Any
    ) -> TestApp:
        options.setdefault("secret", SECRET)
        middleware = SessionMiddleware(validator(app), store, **options)
        return TestApp(validator(middleware))

    return make


@pytest.fixture
def client(make_app: MakeApp) -> TestApp:
    """The session app behind the middleware with default options."""
    return make_app()


@pytest.fixture
def server_store(aerospike_server: AerospikeServer) -> Iterator[AerospikeStore]:
    """A store with its own client on the test's own embedded server.

    For tests that inject faults or move the server's clock; they skip on a
    real cluster, as ``aerospike_server`` does.
    """
    store = AerospikeStore(set="sessions", hosts=aerospike_server.hosts)
    yield store
    store.close()


@pytest.fixture
def backend(
    aerospike_hosts: Any, aerospike_namespace: str, aerospike_set: str
) -> Backend:
    """Where this test's sessions go, for ini files and README examples."""
    return Backend(aerospike_hosts, aerospike_namespace, aerospike_set)
