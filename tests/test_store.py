"""The store's options and operations, through the real client."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import pytest

from aerospike_wsgi_session import AerospikeStore, JSONMapper
from aerospike_wsgi_session.exc import (
    SessionConflictError,
    StoreUnavailableError,
    UnencodableValueError,
)
from aerospike_wsgi_session.store import (
    BUSY_ATTEMPTS,
    Budget,
    SaveResult,
    SessionRecord,
    parse_hosts,
)
from aerospike_wsgi_session.testing import (
    AerospikeServer,
    NamespaceConfig,
    scan_until,
)

from .helpers import BinPerKeyMapper

GENERATION_ERROR = 3


def create(store: AerospikeStore, key: str, data: dict[str, Any], ttl: int = 0) -> None:
    result = store.save(key, data, SessionRecord.new(created=1000.0), ttl=ttl)
    assert result is SaveResult.SAVED


def record_meta(store: AerospikeStore, key: str) -> dict[str, Any]:
    _, meta, _ = store.client.get(store.key(key))
    return meta  # type: ignore[no-any-return]


def test_save_then_load(store: AerospikeStore) -> None:
    create(store, "k1", {"name": "ada", "cart": ["apple"]})

    record = store.load("k1")

    assert record is not None
    assert record.data == {"name": "ada", "cart": ["apple"]}
    assert record.created == 1000.0


def test_load_of_a_missing_session_is_none(store: AerospikeStore) -> None:
    assert store.load("missing") is None


def test_update_writes_only_changed_keys(store: AerospikeStore) -> None:
    create(store, "k1", {"a": 1, "b": 2})
    mine = store.load("k1")
    theirs = store.load("k1")
    assert mine is not None and theirs is not None

    store.save("k1", {"a": 10, "b": 2}, mine, ttl=0)
    store.save("k1", {"a": 1, "b": 20}, theirs, ttl=0)

    loaded = store.load("k1")
    assert loaded is not None and loaded.data == {"a": 10, "b": 20}


def test_unchanged_save_writes_nothing(store: AerospikeStore) -> None:
    create(store, "k1", {"a": 1})
    record = store.load("k1")
    assert record is not None
    generation = record_meta(store, "k1")["gen"]

    assert store.save("k1", {"a": 1}, record, ttl=0) is SaveResult.UNCHANGED
    assert record_meta(store, "k1")["gen"] == generation


def test_an_assigned_key_is_written_even_when_equal(store: AerospikeStore) -> None:
    create(store, "k1", {"role": "user"})
    mine = store.load("k1")
    theirs = store.load("k1")
    assert mine is not None and theirs is not None
    store.save("k1", {"role": "admin"}, theirs, ttl=0, keys={"role"})

    store.save("k1", {"role": "user"}, mine, ttl=0, keys={"role"}, assigned={"role"})

    loaded = store.load("k1")
    assert loaded is not None and loaded.data == {"role": "user"}


def test_take_returns_the_latest_record_and_deletes_it(store: AerospikeStore) -> None:
    create(store, "k1", {"a": 1})
    stale = store.load("k1")
    assert stale is not None
    store.save("k1", {"a": 1, "b": 2}, stale, ttl=0)

    taken = store.take("k1")

    assert taken is not None and taken.data == {"a": 1, "b": 2}
    assert store.load("k1") is None
    assert store.take("k1") is None


def test_take_reads_again_when_the_record_changed_in_between(
    aerospike_server: AerospikeServer,
) -> None:
    store = AerospikeStore(set="sessions", hosts=aerospike_server.hosts)
    create(store, "k1", {"a": 1})
    aerospike_server.fail_next(1, GENERATION_ERROR, commands="write")

    taken = store.take("k1")

    assert taken is not None and taken.data == {"a": 1}
    assert store.load("k1") is None
    assert store.metrics.snapshot()["retries"] == 1
    store.close()


def test_take_gives_up_when_the_record_keeps_changing(
    aerospike_server: AerospikeServer,
) -> None:
    store = AerospikeStore(set="sessions", hosts=aerospike_server.hosts)
    create(store, "k1", {"a": 1})
    aerospike_server.fail_next(BUSY_ATTEMPTS, GENERATION_ERROR, commands="write")

    with pytest.raises(SessionConflictError):
        store.take("k1")

    kept = store.load("k1")
    assert kept is not None and kept.data == {"a": 1}
    assert store.metrics.snapshot()["retries"] == BUSY_ATTEMPTS
    store.close()


def test_rebase_puts_a_request_s_changes_over_newer_data(
    store: AerospikeStore,
) -> None:
    create(store, "k1", {"a": 1, "b": 1, "gone": 1})
    mine = store.load("k1")
    theirs = store.load("k1")
    assert mine is not None and theirs is not None
    store.save("k1", {"a": 1, "b": 2, "gone": 1, "new": 3}, theirs, ttl=0)
    latest = store.load("k1")
    assert latest is not None

    data = store.rebase(latest, {"a": 5, "b": 1}, mine, keys={"a", "gone"})

    assert data == {"a": 5, "b": 2, "new": 3}


def test_save_after_destroy_does_not_resurrect(store: AerospikeStore) -> None:
    create(store, "k1", {"a": 1})
    record = store.load("k1")
    assert record is not None

    store.destroy("k1")

    assert store.save("k1", {"a": 2}, record, ttl=0) is SaveResult.GONE
    assert store.load("k1") is None


def test_create_never_overwrites_another_session(store: AerospikeStore) -> None:
    create(store, "k1", {"owner": "first"})

    result = store.save("k1", {"owner": "second"}, SessionRecord.new(0.0), ttl=0)

    assert result is SaveResult.COLLISION
    loaded = store.load("k1")
    assert loaded is not None and loaded.data == {"owner": "first"}


def test_touch(store: AerospikeStore) -> None:
    create(store, "k1", {"a": 1}, ttl=100)

    assert store.touch("k1", 5000) is True
    assert 4990 <= record_meta(store, "k1")["ttl"] <= 5000
    assert store.touch("missing", 100) is False


def test_destroy_of_a_missing_session_is_quiet(store: AerospikeStore) -> None:
    store.destroy("never-existed")

    assert store.load("never-existed") is None


def test_clear_empties_the_set(store: AerospikeStore) -> None:
    create(store, "k1", {"a": 1})
    create(store, "k2", {"a": 2})

    store.clear()

    # A real server deletes in the background: wait for the set to settle.
    assert scan_until(store.client, store.namespace, store.set, 0) == []
    assert store.load("k1") is None
    assert store.load("k2") is None


def test_foreign_record_is_not_a_session(store: AerospikeStore) -> None:
    store.client.put(store.key("k1"), {"data": {"admin": "true"}})

    assert store.load("k1") is None


def test_undecodable_record_reads_as_missing(
    store: AerospikeStore, caplog: Any
) -> None:
    store.client.put(store.key("k1"), {"_session": 1, "data": "not a map"})

    assert store.load("k1") is None
    assert "cannot be decoded" in caplog.text


def put_with_a_bad_value(store: AerospikeStore) -> SessionRecord:
    """Store ``k1`` with a readable ``good`` and an unreadable ``bad``; load it."""
    bins = {"_session": 1, "data": {"good": "1", "bad": "{not json"}}
    store.client.put(store.key("k1"), bins)
    record = store.load("k1")
    assert record is not None
    return record


def stored_texts(store: AerospikeStore) -> dict[str, str]:
    _, _, bins = store.client.get(store.key("k1"))
    return bins["data"]  # type: ignore[no-any-return]


def test_a_value_is_decoded_when_first_read(store: AerospikeStore, caplog: Any) -> None:
    record = put_with_a_bad_value(store)

    assert record.data["good"] == 1
    assert caplog.text == ""
    assert dict(record.data) == {"good": 1}
    assert "session key 'bad': invalid JSON" in caplog.text


def test_an_unreadable_value_reads_as_absent_and_stays_stored(
    store: AerospikeStore,
) -> None:
    record = put_with_a_bad_value(store)
    data = record.data.copy()
    assert "bad" not in data

    data["good"] = 2
    store.save("k1", data, record, ttl=0, keys={"good"})
    store.save("k1", data, record, ttl=0, keys=None)

    assert stored_texts(store) == {"good": "2", "bad": "{not json"}


def test_a_full_save_keeps_an_unreadable_value_no_one_asked_for(
    store: AerospikeStore,
) -> None:
    record = put_with_a_bad_value(store)
    data = record.data.copy()

    store.save("k1", data, record, ttl=0, keys=None)

    assert stored_texts(store) == {"good": "1", "bad": "{not json"}


@pytest.mark.parametrize("change", ["set", "clear"])
def test_an_unreadable_value_goes_when_the_application_replaces_it(
    store: AerospikeStore, change: str
) -> None:
    record = put_with_a_bad_value(store)
    data = record.data.copy()
    keys = {"bad"}
    if change == "set":
        data["bad"] = "fixed"
    else:
        keys = data.every_key()
        data.clear()

    store.save("k1", data, record, ttl=0, keys=keys)

    expected = {"good": "1", "bad": '"fixed"'} if change == "set" else {}
    assert stored_texts(store) == expected


@pytest.mark.parametrize(
    ("ttl", "max_age", "expected"),
    [
        pytest.param(None, 600, 600, id="from-max-age"),
        pytest.param(300, 600, 300, id="explicit-wins"),
        pytest.param(None, None, 0, id="namespace-default"),
        pytest.param(0, 600, 0, id="zero-disables"),
        pytest.param(-1, 600, -1, id="never-expire"),
    ],
)
def test_ttl_resolution(ttl: int | None, max_age: int | None, expected: int) -> None:
    assert AerospikeStore(ttl=ttl, client=object()).resolve_ttl(max_age) == expected


def test_written_ttl_reaches_the_record(store: AerospikeStore) -> None:
    create(store, "short", {"a": 1}, ttl=120)
    create(store, "forever", {"a": 1}, ttl=-1)

    assert 110 <= record_meta(store, "short")["ttl"] <= 120
    assert record_meta(store, "forever")["ttl"] == 4294967295


def test_zero_ttl_takes_the_namespace_default(
    aerospike_server: AerospikeServer,
) -> None:
    server = AerospikeServer(namespaces=[NamespaceConfig("test", default_ttl=900)])
    with server:
        store = AerospikeStore(set="s", hosts=server.hosts)
        create(store, "k1", {"a": 1}, ttl=0)
        assert 890 <= record_meta(store, "k1")["ttl"] <= 900
        store.close()


def test_namespace_and_set_are_used(aerospike_server: AerospikeServer) -> None:
    server = AerospikeServer(
        namespaces=[NamespaceConfig("test"), NamespaceConfig("web")]
    )
    with server:
        store = AerospikeStore(namespace="web", set="logins", hosts=server.hosts)
        create(store, "k1", {"a": 1})
        _, _, bins = store.client.get(("web", "logins", "k1"))
        assert bins["data"] == {"a": "1"}
        store.close()


def test_custom_mapper(store: AerospikeStore) -> None:
    class UpperMapper:
        def to_record(self, data: Any) -> dict[str, Any]:
            return {"blob": repr(sorted(data.items())).upper()}

        def from_record(self, bins: Any) -> dict[str, Any]:
            return {"shout": bins["blob"]}

    mapped = AerospikeStore(
        namespace=store.namespace,
        set=store.set,
        client=store.client,
        mapper=UpperMapper(),
    )
    create(mapped, "k1", {"a": "b"})

    loaded = mapped.load("k1")
    assert loaded is not None and loaded.data == {"shout": "[('A', 'B')]"}


def with_mapper(store: AerospikeStore, mapper: Any) -> AerospikeStore:
    return AerospikeStore(
        namespace=store.namespace, set=store.set, client=store.client, mapper=mapper
    )


@pytest.mark.parametrize(
    "mapper", [JSONMapper(), BinPerKeyMapper()], ids=["json", "bin-per-key"]
)
def test_removed_keys_are_removed(store: AerospikeStore, mapper: Any) -> None:
    mapped = with_mapper(store, mapper)
    create(mapped, "k1", {"a": 1, "b": 2})
    record = mapped.load("k1")
    assert record is not None

    mapped.save("k1", {"b": 2}, record, ttl=0)

    loaded = mapped.load("k1")
    assert loaded is not None and loaded.data == {"b": 2}


def test_a_mapper_may_not_write_the_store_s_own_bins(store: AerospikeStore) -> None:
    class UserForging(BinPerKeyMapper):
        def to_record(self, data: Any) -> dict[str, Any]:
            return {**super().to_record(data), "_user": "admin"}

    mapped = with_mapper(store, UserForging())

    with pytest.raises(ValueError, match="_user"):
        create(mapped, "k1", {"a": 1})
    assert mapped.load("k1") is None


def test_a_record_a_custom_mapper_cannot_decode_reads_as_missing(
    store: AerospikeStore, caplog: pytest.LogCaptureFixture
) -> None:
    class Refusing(BinPerKeyMapper):
        def from_record(self, bins: Any) -> dict[str, Any]:
            raise ValueError("not mine")

    mapped = with_mapper(store, Refusing())
    create(mapped, "k1", {"a": 1})

    with caplog.at_level(logging.WARNING, logger="aerospike_wsgi_session"):
        assert mapped.load("k1") is None
    assert "cannot be decoded: ValueError" in caplog.text
    assert mapped.metrics.snapshot()["misses.undecodable"] == 1


def test_a_custom_mapper_s_encoding_error_names_the_key(store: AerospikeStore) -> None:
    mapped = with_mapper(store, BinPerKeyMapper())

    with pytest.raises(UnencodableValueError) as raised:
        create(mapped, "k1", {"fine": 1, "tags": {"red"}})

    assert raised.value.key == "tags"
    assert isinstance(raised.value.__cause__, TypeError)
    assert mapped.load("k1") is None


def test_threads_arriving_together_share_one_client(aerospike_hosts: Any) -> None:
    store = AerospikeStore(hosts=aerospike_hosts)
    arrived = threading.Barrier(8)
    clients: list[Any] = []

    def first_request() -> None:
        arrived.wait()
        clients.append(store.client)

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(clients) == 8 and len({id(client) for client in clients}) == 1
    store.close()


def test_given_client_is_never_closed(store: AerospikeStore) -> None:
    store.close()

    assert store.client.is_connected()


def test_store_creates_and_closes_its_own_client(
    aerospike_hosts: Any, aerospike_namespace: str
) -> None:
    hosts = ",".join(f"{host}:{port}" for host, port in aerospike_hosts)
    store = AerospikeStore(namespace=aerospike_namespace, set="own", hosts=hosts)
    client = store.client

    store.close()

    assert not client.is_connected()


def test_client_options_reach_the_client(aerospike_hosts: Any) -> None:
    store = AerospikeStore(
        hosts=aerospike_hosts, policies={"read": {"total_timeout": 77}}
    )

    assert store._client_config["policies"]["read"]["total_timeout"] == 77
    assert store._client_config["policies"]["write"]["total_timeout"] == 500


def test_every_call_of_the_store_has_a_bounded_default_timeout() -> None:
    policies = AerospikeStore(hosts="127.0.0.1:3000")._client_config["policies"]

    assert sorted(policies) == ["operate", "query", "read", "remove", "write"]
    assert all(0 < policy["total_timeout"] <= 2000 for policy in policies.values())


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        ("a:3000,b:3001", [("a", 3000), ("b", 3001)]),
        ("a:3000 b", [("a", 3000), ("b", 3000)]),
        ([("a", 3000)], [("a", 3000)]),
        (["[::1]:3000"], [("::1", 3000)]),
    ],
)
def test_parse_hosts(hosts: Any, expected: Any) -> None:
    assert parse_hosts(hosts) == expected


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"namespace": "n" * 32}, id="long-namespace"),
        pytest.param({"set": "s" * 64}, id="long-set"),
        pytest.param({"set": "a:b"}, id="bad-set"),
        pytest.param({"ttl": -5}, id="bad-ttl"),
        pytest.param({"hosts": "a:port"}, id="bad-host"),
        pytest.param({"mapper": JSONMapper(bin_name="_user")}, id="reserved-bin"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AerospikeStore(**options)


def test_child_process_gets_its_own_client(
    store: AerospikeStore, aerospike_hosts: Any
) -> None:
    own = AerospikeStore(
        namespace=store.namespace, set=store.set, hosts=aerospike_hosts
    )
    create(own, "k1", {"a": 1})
    parent_client = own.client

    pid = os.fork()
    if pid == 0:
        child_ok = own._client is None and own.load("k1") is not None
        os._exit(0 if child_ok else 1)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert own.client is parent_client
    assert own.load("k1") is not None
    own.close()


def test_json_mapper_is_the_default() -> None:
    assert isinstance(AerospikeStore(client=object()).mapper, JSONMapper)


def test_a_spent_budget_fails_at_once_without_asking_aerospike(
    store: AerospikeStore,
) -> None:
    create(store, "k1", {"a": 1})

    with pytest.raises(StoreUnavailableError, match="time for Aerospike is spent"):
        store.load("k1", budget=Budget(0))

    counted = store.metrics.snapshot()
    assert counted["errors.out_of_time"] == 1
    assert "latency.load.count" not in counted


def test_a_budget_is_spent_by_the_calls_made_with_it(store: AerospikeStore) -> None:
    create(store, "k1", {"a": 1})
    budget = Budget(1.0)

    store.load("k1", budget=budget)
    store.destroy("k1", budget=budget)

    took = store.metrics.snapshot()
    assert budget.left == pytest.approx(
        1.0 - took["latency.load.total"] - took["latency.destroy.total"]
    )
