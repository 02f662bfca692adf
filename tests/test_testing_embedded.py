"""What only the embedded server offers: time travel, faults, restarts, and
its answers to broken or unusual clients."""

from __future__ import annotations

import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers import expressions as exp
from aerospike_helpers.operations import operations as op

from aerospike_wsgi_session.testing import (
    AerospikeServer,
    ManualClock,
    NamespaceConfig,
    truncate,
)
from aerospike_wsgi_session.testing.plugin import HOSTS_VARIABLE

from .test_testing_protocol import proto

KEY = ("test", "demo", "k")


@pytest.fixture
def client(aerospike_server: AerospikeServer, aerospike_connect: Any) -> Any:
    """A client of the test's own embedded server."""
    return aerospike_connect(aerospike_server.hosts)


@pytest.fixture
def clock(aerospike_server: AerospikeServer) -> ManualClock:
    """The manual clock of the test's embedded server."""
    assert isinstance(aerospike_server.clock, ManualClock)
    return aerospike_server.clock


def eventually(check: Callable[[], Any], attempts: int = 100) -> Any:
    """Retry ``check`` until it stops raising client errors (bounded)."""
    for _ in range(attempts - 1):
        try:
            return check()
        except (ex.AerospikeError, ex.TimeoutError):
            time.sleep(0.05)
    return check()


def test_records_expire_by_the_server_clock(client: Any, clock: ManualClock) -> None:
    client.put(KEY, {"v": 1}, policy={"ttl": 10})
    clock.advance(10)
    assert client.get(KEY)[2] == {"v": 1}

    clock.advance(1)

    with pytest.raises(ex.RecordNotFound):
        client.get(KEY)
    assert client.scan("test", "demo").results() == []


def test_write_after_expiry_recreates_at_generation_1(
    client: Any, clock: ManualClock
) -> None:
    client.put(KEY, {"v": 1}, policy={"ttl": 5})
    client.put(KEY, {"v": 2}, policy={"ttl": 5})
    clock.advance(6)

    client.put(KEY, {"w": 3})

    assert client.get(KEY)[1:] == ({"gen": 1, "ttl": 4294967295}, {"w": 3})


@pytest.mark.parametrize(
    "command",
    [
        lambda client: client.get(KEY),
        lambda client: client.touch(KEY, 10),
        lambda client: client.operate(KEY, [op.read("v")]),
        lambda client: client.operate(KEY, [op.touch()]),
        lambda client: client.remove(KEY),
        lambda client: client.remove(KEY, policy={"gen": aerospike.POLICY_GEN_EQ}),
    ],
    ids=["get", "touch", "operate-read", "operate-touch", "remove", "remove-gen"],
)
def test_an_expired_record_is_a_missing_one(
    client: Any, clock: ManualClock, command: Callable[[Any], Any]
) -> None:
    client.put(KEY, {"v": 1}, policy={"ttl": 5})
    clock.advance(6)

    with pytest.raises(ex.RecordNotFound):
        command(client)
    assert client.exists(KEY)[1] is None


def test_operate_on_an_expired_record_starts_afresh(
    client: Any, clock: ManualClock
) -> None:
    client.put(KEY, {"v": 1, "w": 2}, policy={"ttl": 5})
    clock.advance(6)

    client.operate(KEY, [op.increment("v", 1)])

    assert client.get(KEY)[1:] == ({"gen": 1, "ttl": 4294967295}, {"v": 1})


def test_purge_expired_counts_the_removed_records(
    aerospike_server: AerospikeServer, client: Any, clock: ManualClock
) -> None:
    for n in range(3):
        client.put(("test", "demo", n), {"v": n}, policy={"ttl": 5})
    client.put(KEY, {"v": 9})
    clock.advance(60)

    assert aerospike_server.purge_expired() == 3
    assert aerospike_server.purge_expired() == 0


def test_read_touch_resets_the_ttl_without_a_new_generation(
    client: Any, clock: ManualClock
) -> None:
    client.put(KEY, {"v": 1}, policy={"ttl": 10})
    clock.advance(8)

    client.get(KEY, policy={"read_touch_ttl_percent": 100})
    clock.advance(8)

    assert client.get(KEY)[1]["gen"] == 1
    clock.advance(3)
    with pytest.raises(ex.RecordNotFound):
        client.get(KEY)


@pytest.mark.parametrize(
    ("percent", "elapsed", "touched"),
    [(80, 1, False), (80, 3, True), (-1, 9, False), (0, 9, False)],
    ids=["80-early", "80-late", "never", "server-default"],
)
def test_read_touch_percent(
    client: Any, clock: ManualClock, percent: int, elapsed: int, touched: bool
) -> None:
    client.put(KEY, {"v": 1}, policy={"ttl": 10})
    clock.advance(elapsed)
    client.get(KEY, policy={"read_touch_ttl_percent": percent})

    clock.advance(11 - elapsed)

    assert (client.exists(KEY)[1] is not None) is touched


def test_ttl_is_forbidden_without_expiry_processing(
    aerospike_connect: Any,
) -> None:
    namespaces = [
        NamespaceConfig("test", nsup_period=0),
        NamespaceConfig("allowed", nsup_period=0, allow_ttl_without_nsup=True),
    ]
    with AerospikeServer(namespaces=namespaces) as server:
        client = aerospike_connect(server.hosts)
        with pytest.raises(ex.ForbiddenError):
            client.put(KEY, {"v": 1}, policy={"ttl": 60})
        client.put(KEY, {"v": 1})
        client.put(("allowed", "demo", "k"), {"v": 1}, policy={"ttl": 60})

        assert client.get(("allowed", "demo", "k"))[2] == {"v": 1}


def test_namespace_default_ttl(aerospike_connect: Any) -> None:
    clock = ManualClock()
    config = NamespaceConfig("test", default_ttl=100)
    with AerospikeServer(namespaces=[config], clock=clock) as server:
        client = aerospike_connect(server.hosts)
        client.put(KEY, {"v": 1})
        clock.advance(101)

        assert client.exists(KEY)[1] is None


def test_explicit_namespace_default_ttl(aerospike_connect: Any) -> None:
    clock = ManualClock()
    config = NamespaceConfig("test", default_ttl=100)
    with AerospikeServer(namespaces=[config], clock=clock) as server:
        client = aerospike_connect(server.hosts)
        client.put(KEY, {"v": 1}, policy={"ttl": 500})
        client.put(KEY, {"v": 2}, policy={"ttl": aerospike.TTL_NAMESPACE_DEFAULT})
        clock.advance(101)

        assert client.exists(KEY)[1] is None


def test_namespace_info_shows_its_configuration(aerospike_connect: Any) -> None:
    config = NamespaceConfig("custom", 300, max_record_size=131_072, nsup_period=10)
    with AerospikeServer(namespaces=[config]) as server:
        client = aerospike_connect(server.hosts)
        raw = client.info_random_node("namespace/custom").split("\t", 1)[1]
        stats = dict(item.split("=", 1) for item in raw.strip().split(";"))

        assert stats["default-ttl"] == "300"
        assert stats["max-record-size"] == "131072"
        assert stats["nsup-period"] == "10"
        with pytest.raises(ex.RecordTooBig):
            client.put(("custom", "s", 1), {"b": b"\0" * 131_072})


def test_filter_expressions_are_refused(aerospike_connect: Any) -> None:
    # Unsupported: refusing them beats ignoring a filter a real server applies.
    with AerospikeServer() as server:
        client = aerospike_connect(server.hosts)
        client.put(KEY, {"v": 1})
        policy = {"expressions": exp.Eq(exp.IntBin("v"), 2).compile()}

        with pytest.raises(ex.UnsupportedFeature):
            client.get(KEY, policy=policy)
        with pytest.raises(ex.UnsupportedFeature):
            client.scan("test", "demo").results(policy)


def test_truncate_with_lut_spares_later_writes(client: Any, clock: ManualClock) -> None:
    client.put(("test", "demo", "old"), {"v": 1})
    clock.advance(1)
    cutoff = int(clock() * 1e9)
    clock.advance(1)
    client.put(("test", "demo", "new"), {"v": 2})

    truncate(client, "test", "demo", before_ns=cutoff)

    assert [b for _, _, b in client.scan("test", "demo").results()] == [{"v": 2}]


def test_truncate_spares_writes_of_its_own_millisecond(
    client: Any, clock: ManualClock
) -> None:
    client.put(KEY, {"v": 1})

    truncate(client, "test", "demo")
    assert client.get(KEY)[2] == {"v": 1}
    clock.advance(0.001)
    truncate(client, "test", "demo")

    assert client.exists(KEY)[1] is None


@pytest.mark.skipif(
    bool(os.environ.get(HOSTS_VARIABLE, "").strip()),
    reason="truncates a whole namespace, which on a real cluster wipes the "
    "data of every other user of it",
)
def test_truncate_namespace(client: Any, clock: ManualClock) -> None:
    client.put(("test", "a", 1), {"v": 1})
    client.put(("test", None, 2), {"v": 2})
    clock.advance(0.001)

    truncate(client, "test")

    assert client.scan("test", None).results() == []


@pytest.mark.parametrize(
    ("which", "failed"),
    [("all", [True, False]), ("read", [False, True]), ("write", [True, False])],
)
def test_fail_next_by_command_kind(
    aerospike_server: AerospikeServer, client: Any, which: Any, failed: list[bool]
) -> None:
    client.put(KEY, {"v": 1})
    aerospike_server.fail_next(1, 14, commands=which)

    outcomes = []
    for command in (lambda: client.put(KEY, {"v": 2}), lambda: client.get(KEY)):
        try:
            command()
            outcomes.append(False)
        except ex.RecordBusy:
            outcomes.append(True)

    assert outcomes == failed


def test_injected_failure_changes_nothing(
    aerospike_server: AerospikeServer, client: Any
) -> None:
    client.put(KEY, {"v": 1})
    aerospike_server.fail_next(2, 13)

    for _ in range(2):
        with pytest.raises(ex.RecordTooBig):
            client.put(KEY, {"v": 2})

    assert client.get(KEY)[1:] == ({"gen": 1, "ttl": 4294967295}, {"v": 1})


def test_delay_makes_the_client_time_out(
    aerospike_server: AerospikeServer, client: Any
) -> None:
    client.put(KEY, {"v": 1})
    aerospike_server.delay = 0.3
    policy = {"total_timeout": 50, "socket_timeout": 50, "max_retries": 0}

    with pytest.raises(ex.TimeoutError):
        client.get(KEY, policy=policy)
    aerospike_server.delay = 0.0

    assert eventually(lambda: client.get(KEY))[2] == {"v": 1}


def test_stats_count_data_commands(
    aerospike_server: AerospikeServer, client: Any
) -> None:
    before = aerospike_server.stats.copy()

    client.put(KEY, {"v": 1})
    client.get(KEY)
    client.exists(KEY)
    client.operate(KEY, [op.increment("v", 1)])
    client.touch(KEY, 10)
    client.remove(KEY)
    client.scan("test", "demo").results()

    counted = aerospike_server.stats - before
    counted.pop("info", None)
    kinds = ["put", "get", "exists", "operate", "touch", "delete", "scan"]
    assert counted == dict.fromkeys(kinds, 1)


def test_drop_connections_then_the_client_reconnects(
    aerospike_server: AerospikeServer, client: Any
) -> None:
    client.put(KEY, {"v": 1})

    aerospike_server.drop_connections()

    assert eventually(lambda: client.get(KEY))[2] == {"v": 1}


@pytest.mark.parametrize("keep_data", [True, False])
def test_restart_on_the_same_port(
    aerospike_server: AerospikeServer, client: Any, keep_data: bool
) -> None:
    client.put(KEY, {"v": 1})
    port = aerospike_server.port

    aerospike_server.restart(keep_data=keep_data)

    assert aerospike_server.port == port
    found = eventually(lambda: client.exists(KEY))[1]
    assert (found is not None) is keep_data


def test_stop_then_start_serves_the_same_client(
    aerospike_server: AerospikeServer, client: Any
) -> None:
    client.put(KEY, {"v": 1})
    aerospike_server.stop()
    with pytest.raises((ex.AerospikeError, ex.TimeoutError)):
        client.get(KEY, policy={"total_timeout": 200, "max_retries": 0})

    aerospike_server.start()

    assert eventually(lambda: client.get(KEY))[2] == {"v": 1}


def test_clear_wipes_records(aerospike_server: AerospikeServer, client: Any) -> None:
    client.put(KEY, {"v": 1})

    aerospike_server.clear()

    assert client.exists(KEY)[1] is None


def test_cluster_name_must_match(aerospike_connect: Any) -> None:
    with AerospikeServer(cluster_name="prod") as server:
        assert aerospike_connect(server.hosts, cluster_name="prod").is_connected()
        with pytest.raises(ex.ClientError):
            aerospike_connect(server.hosts, cluster_name="other")


def test_several_namespaces_and_sets_info(aerospike_connect: Any) -> None:
    namespaces = [NamespaceConfig("test"), NamespaceConfig("cache")]
    with AerospikeServer(namespaces=namespaces) as server:
        client = aerospike_connect(server.hosts)
        client.put(("cache", "s", 1), {"v": 1})

        assert client.info_random_node("namespaces").split("\t")[1].strip() == (
            "test;cache"
        )
        sets = client.info_random_node("sets").split("\t")[1]
        assert "ns=cache:set=s:objects=1:" in sets


def test_older_build_uses_the_older_index_syntax(aerospike_connect: Any) -> None:
    with AerospikeServer(build="7.2.0.0") as server:
        client = aerospike_connect(server.hosts)
        client.put(KEY, {"c": "red"})
        client.index_single_value_create(
            "test", "demo", "c", aerospike.INDEX_STRING, "old_c"
        )
        query = client.query("test", "demo")
        query.where(aerospike.predicates.equals("c", "red"))

        assert [b for _, _, b in query.results()] == [{"c": "red"}]
        client.index_remove("test", "old_c")


def raw_exchange(port: int, payload: bytes) -> bytes:
    """Send raw bytes and return what comes back before the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


AS_MSG_HEAD = struct.pack(">BBBBBBIIIHH", 22, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (proto(3, 1, b"build\n"), "protocol version"),
        (proto(2, 9, b"x"), "unknown message type"),
        (proto(2, 3, b"", size=1 << 40), "128 MiB"),
        (proto(2, 1, b"node\n", size=50), "truncated"),
        (proto(2, 3, b"\x16\x00"), "truncated data message"),
        (proto(2, 3, AS_MSG_HEAD + struct.pack(">IBBBB", 4, 99, 0, 0, 0)), "op code"),
        (proto(2, 4, b"\0\0\0\0\0\0\0\x10garbage"), "compressed"),
    ],
    ids=["version", "type", "oversized", "truncated", "short-msg", "op", "zlib"],
)
def test_bad_input_closes_only_that_connection(
    aerospike_server: AerospikeServer,
    client: Any,
    caplog: pytest.LogCaptureFixture,
    payload: bytes,
    reason: str,
) -> None:
    with caplog.at_level(logging.WARNING, "aerospike_wsgi_session.testing"):
        answer = raw_exchange(aerospike_server.port, payload)

    assert answer == b""
    assert any(reason in record.getMessage() for record in caplog.records)
    client.put(KEY, {"v": 1})
    assert client.get(KEY)[2] == {"v": 1}


def test_manual_clock() -> None:
    clock = ManualClock(1000.0)
    clock.advance(2.5)
    assert clock() == 1002.5

    clock.set(50)

    assert clock() == 50.0
    with pytest.raises(ValueError):
        clock.advance(-1)


@pytest.fixture
def two_servers() -> Iterator[tuple[AerospikeServer, AerospikeServer]]:
    """Two embedded servers running at once."""
    with AerospikeServer() as first, AerospikeServer() as second:
        yield first, second


def test_servers_are_independent(
    two_servers: tuple[AerospikeServer, AerospikeServer], aerospike_connect: Any
) -> None:
    first, second = (aerospike_connect(s.hosts) for s in two_servers)

    first.put(KEY, {"v": 1})

    assert second.exists(KEY)[1] is None
