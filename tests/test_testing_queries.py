"""Scans, queries, secondary indexes, truncation and info commands."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import aerospike
import pytest
from aerospike import exception as ex
from aerospike import predicates as p

from aerospike_wsgi_session.testing import scan_until, truncate

COLORS = ("red", "green", "blue")


@pytest.fixture(scope="module")
def indexed_set(aerospike_client: Any, aerospike_namespace: str) -> Iterator[str]:
    """A set of 30 records, with a string index on ``color`` and an integer
    index on ``n``; created once, as each index costs the client ~2 s."""
    name = f"q{uuid.uuid4().hex[:12]}"
    ns = aerospike_namespace
    for n in range(30):
        aerospike_client.put((ns, name, n), {"n": n, "color": COLORS[n % 3]})
    aerospike_client.index_single_value_create(
        ns, name, "color", aerospike.INDEX_STRING, f"{name}_color"
    )
    aerospike_client.index_single_value_create(
        ns, name, "n", aerospike.INDEX_NUMERIC, f"{name}_n"
    )
    yield name
    aerospike_client.index_remove(ns, f"{name}_color")
    aerospike_client.index_remove(ns, f"{name}_n")
    truncate(aerospike_client, ns, name)


def fill(client: Any, ns: str, set_name: str, count: int) -> None:
    """Write ``count`` records with bins ``n`` and ``pad``."""
    for n in range(count):
        client.put((ns, set_name, n), {"n": n, "pad": "x"})


def numbers(records: list[Any]) -> list[int]:
    """Return the sorted ``n`` bins of scan or query results."""
    return sorted(bins["n"] for _, _, bins in records)


def test_scan_returns_only_its_set(
    aerospike_client: Any, aerospike_namespace: str, aerospike_set: str
) -> None:
    fill(aerospike_client, aerospike_namespace, aerospike_set, 20)
    other = f"{aerospike_set}x"
    aerospike_client.put((aerospike_namespace, other, 1), {"n": 99})

    try:
        records = aerospike_client.scan(aerospike_namespace, aerospike_set).results()
    finally:
        truncate(aerospike_client, aerospike_namespace, other)

    assert numbers(records) == list(range(20))


def test_scan_max_records_and_select(
    aerospike_client: Any, aerospike_namespace: str, aerospike_set: str
) -> None:
    fill(aerospike_client, aerospike_namespace, aerospike_set, 20)
    scan = aerospike_client.scan(aerospike_namespace, aerospike_set)
    scan.select("n")

    records = scan.results({"max_records": 5})

    assert len(records) == 5
    assert all(set(bins) == {"n"} for _, _, bins in records)


def test_query_without_filter_and_without_bins(
    aerospike_client: Any, aerospike_namespace: str, aerospike_set: str
) -> None:
    fill(aerospike_client, aerospike_namespace, aerospike_set, 4)
    query = aerospike_client.query(aerospike_namespace, aerospike_set)

    records = query.results(options={"nobins": True})

    assert [bins for _, _, bins in records] == [{}] * 4
    assert all(meta["gen"] == 1 for _, meta, _ in records)


def test_query_string_equality(
    aerospike_client: Any, aerospike_namespace: str, indexed_set: str
) -> None:
    query = aerospike_client.query(aerospike_namespace, indexed_set)
    query.where(p.equals("color", "green"))

    assert numbers(query.results()) == list(range(1, 30, 3))


def test_query_integer_equality_and_range(
    aerospike_client: Any, aerospike_namespace: str, indexed_set: str
) -> None:
    equal = aerospike_client.query(aerospike_namespace, indexed_set)
    equal.where(p.equals("n", 7))
    between = aerospike_client.query(aerospike_namespace, indexed_set)
    between.where(p.between("n", 10, 14))

    assert numbers(equal.results()) == [7]
    assert numbers(between.results()) == [10, 11, 12, 13, 14]


def test_query_max_records(
    aerospike_client: Any, aerospike_namespace: str, indexed_set: str
) -> None:
    query = aerospike_client.query(aerospike_namespace, indexed_set)
    query.where(p.between("n", 0, 29))
    query.max_records = 4

    assert len(query.results()) == 4


def test_query_on_a_bin_without_index_is_code_201(
    aerospike_client: Any, aerospike_namespace: str, indexed_set: str
) -> None:
    query = aerospike_client.query(aerospike_namespace, indexed_set)
    query.where(p.equals("pad", "x"))

    with pytest.raises(ex.IndexNotFound):
        query.results()


def test_duplicate_and_missing_indexes(
    aerospike_client: Any, aerospike_namespace: str, indexed_set: str
) -> None:
    with pytest.raises(ex.IndexFoundError):
        aerospike_client.index_single_value_create(
            aerospike_namespace,
            indexed_set,
            "color",
            aerospike.INDEX_STRING,
            f"{indexed_set}_color",
        )
    with pytest.raises(ex.IndexNotFound):
        aerospike_client.index_remove(aerospike_namespace, f"{indexed_set}_none")


def test_truncate_a_set(
    aerospike_client: Any, aerospike_namespace: str, aerospike_set: str
) -> None:
    fill(aerospike_client, aerospike_namespace, aerospike_set, 5)

    truncate(aerospike_client, aerospike_namespace, aerospike_set)

    assert scan_until(aerospike_client, aerospike_namespace, aerospike_set, 0) == []


def info_value(client: Any, command: str) -> str:
    """Return the value of an info command from one node."""
    line: str = client.info_random_node(command)
    return line.split("\t", 1)[1].strip()


def test_info_namespaces_and_build(
    aerospike_client: Any, aerospike_namespace: str
) -> None:
    assert aerospike_namespace in info_value(aerospike_client, "namespaces").split(";")
    build = info_value(aerospike_client, "build").split(".")
    assert len(build) >= 3 and all(part.isdigit() for part in build)


def test_info_set_statistics(
    aerospike_client: Any, aerospike_namespace: str, aerospike_set: str
) -> None:
    fill(aerospike_client, aerospike_namespace, aerospike_set, 3)

    raw = info_value(aerospike_client, f"sets/{aerospike_namespace}/{aerospike_set}")
    stats = dict(item.split("=", 1) for item in raw.rstrip(";").split(":"))

    assert stats["objects"] == "3"
    assert int(stats["data_used_bytes"]) > 0


def test_info_namespace_settings(
    aerospike_client: Any, aerospike_namespace: str
) -> None:
    raw = info_value(aerospike_client, f"namespace/{aerospike_namespace}")
    stats = dict(item.split("=", 1) for item in raw.split(";"))

    # Real server defaults, as on the server these tests were checked against.
    assert int(stats["objects"]) >= 0
    assert int(stats["nsup-period"]) > 0
    assert stats["default-ttl"] == "0"
    assert stats["max-record-size"] == "1048576"


def test_unknown_info_command_is_an_error(aerospike_client: Any) -> None:
    with pytest.raises(ex.InvalidRequest):
        aerospike_client.info_all("no-such-command")
