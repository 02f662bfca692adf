"""The middleware under real gunicorn processes, and the fork safety they need."""

from __future__ import annotations

import os
from typing import Any

from aerospike_wsgi_session import AerospikeStore
from aerospike_wsgi_session.testing.plugin import Hosts


def _child_writes(store: AerospikeStore, parent_client: Any) -> int:
    """In a forked child: write one record, and say how it went as an exit code."""
    try:
        if store.client is parent_client:
            return 2
        store.client.put(store.key("child"), {"pid": os.getpid()})
        return 0
    except BaseException:
        return 1


def test_a_forked_child_makes_its_own_client(
    aerospike_hosts: Hosts, aerospike_namespace: str, aerospike_set: str
) -> None:
    store = AerospikeStore(
        namespace=aerospike_namespace, set=aerospike_set, hosts=aerospike_hosts
    )
    parent_client = store.client
    parent_client.put(store.key("parent"), {"pid": os.getpid()})

    pid = os.fork()
    if pid == 0:
        os._exit(_child_writes(store, parent_client))
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    _, _, bins = store.client.get(store.key("child"))
    assert bins == {"pid": pid}
    assert store.client is parent_client
    store.close()
