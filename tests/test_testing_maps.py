"""Map operations inside operate, with return types and write flags."""

from __future__ import annotations

from typing import Any

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers.operations import map_operations as mo

CREATE_ONLY = {"map_write_flags": aerospike.MAP_WRITE_FLAGS_CREATE_ONLY}
UPDATE_ONLY = {"map_write_flags": aerospike.MAP_WRITE_FLAGS_UPDATE_ONLY}
NO_FAIL = aerospike.MAP_WRITE_FLAGS_NO_FAIL


@pytest.fixture
def key(aerospike_client: Any, aerospike_namespace: str, aerospike_set: str) -> Any:
    """A record holding map bin ``m`` = {"a": 1, "b": 2}."""
    record_key = (aerospike_namespace, aerospike_set, "map")
    aerospike_client.operate(record_key, [mo.map_put_items("m", {"a": 1, "b": 2})])
    return record_key


def stored_map(client: Any, key: Any) -> Any:
    """Return the map bin as stored."""
    return client.get(key)[2]["m"]


def test_put_returns_the_new_size(aerospike_client: Any, key: Any) -> None:
    _, _, bins = aerospike_client.operate(key, [mo.map_put("m", "c", "x")])

    assert bins == {"m": 3}
    assert stored_map(aerospike_client, key) == {"a": 1, "b": 2, "c": "x"}


@pytest.mark.parametrize(
    ("return_type", "expected"),
    [
        (aerospike.MAP_RETURN_NONE, None),
        (aerospike.MAP_RETURN_KEY, "a"),
        (aerospike.MAP_RETURN_VALUE, 1),
        (aerospike.MAP_RETURN_KEY_VALUE, {"a": 1}),
        (aerospike.MAP_RETURN_COUNT, 1),
        (aerospike.MAP_RETURN_EXISTS, True),
    ],
    ids=["none", "key", "value", "key-value", "count", "exists"],
)
def test_get_by_key_return_types(
    aerospike_client: Any, key: Any, return_type: int, expected: Any
) -> None:
    ops = [mo.map_get_by_key("m", "a", return_type)]

    assert aerospike_client.operate(key, ops)[2]["m"] == expected


def test_get_by_missing_key(aerospike_client: Any, key: Any) -> None:
    ops = [
        mo.map_get_by_key("m", "zz", aerospike.MAP_RETURN_VALUE),
        mo.map_get_by_key("m", "zz", aerospike.MAP_RETURN_EXISTS),
        mo.map_get_by_key("m", "zz", aerospike.MAP_RETURN_COUNT),
    ]

    results = aerospike_client.operate_ordered(key, ops)[2]

    assert results == [("m", None), ("m", False), ("m", 0)]


def test_key_list_reads_and_removes(aerospike_client: Any, key: Any) -> None:
    ops = [
        mo.map_get_by_key_list("m", ["a", "b", "q"], aerospike.MAP_RETURN_VALUE),
        mo.map_remove_by_key_list("m", ["a", "q"], aerospike.MAP_RETURN_KEY),
        mo.map_size("m"),
    ]

    results = aerospike_client.operate_ordered(key, ops)[2]

    assert results == [("m", [1, 2]), ("m", ["a"]), ("m", 1)]
    assert stored_map(aerospike_client, key) == {"b": 2}


def test_remove_by_key_returns_the_value(aerospike_client: Any, key: Any) -> None:
    ops = [mo.map_remove_by_key("m", "b", aerospike.MAP_RETURN_VALUE)]

    assert aerospike_client.operate(key, ops)[2] == {"m": 2}
    assert stored_map(aerospike_client, key) == {"a": 1}


def test_increment_creates_and_adds(aerospike_client: Any, key: Any) -> None:
    ops = [mo.map_increment("m", "a", 5), mo.map_increment("m", "new", 2)]

    results = aerospike_client.operate_ordered(key, ops)[2]

    assert results == [("m", 6), ("m", 2)]


def test_clear_empties_the_map(aerospike_client: Any, key: Any) -> None:
    aerospike_client.operate(key, [mo.map_clear("m")])

    assert aerospike_client.operate(key, [mo.map_size("m")])[2] == {"m": 0}


def test_create_only_refuses_an_existing_key(aerospike_client: Any, key: Any) -> None:
    with pytest.raises(ex.ElementExistsError):
        aerospike_client.operate(key, [mo.map_put("m", "a", 9, CREATE_ONLY)])

    assert stored_map(aerospike_client, key)["a"] == 1


def test_update_only_refuses_a_missing_key(aerospike_client: Any, key: Any) -> None:
    with pytest.raises(ex.ElementNotFoundError):
        aerospike_client.operate(key, [mo.map_put("m", "zz", 9, UPDATE_ONLY)])

    assert "zz" not in stored_map(aerospike_client, key)


def test_no_fail_skips_all_items_without_partial(
    aerospike_client: Any, key: Any
) -> None:
    policy = {"map_write_flags": aerospike.MAP_WRITE_FLAGS_CREATE_ONLY | NO_FAIL}

    aerospike_client.operate(key, [mo.map_put_items("m", {"a": 9, "c": 3}, policy)])

    assert stored_map(aerospike_client, key) == {"a": 1, "b": 2}


def test_no_fail_partial_applies_the_allowed_items(
    aerospike_client: Any, key: Any
) -> None:
    flags = aerospike.MAP_WRITE_FLAGS_CREATE_ONLY | NO_FAIL
    policy = {"map_write_flags": flags | aerospike.MAP_WRITE_FLAGS_PARTIAL}

    aerospike_client.operate(key, [mo.map_put_items("m", {"a": 9, "c": 3}, policy)])

    assert stored_map(aerospike_client, key) == {"a": 1, "b": 2, "c": 3}


def test_map_op_on_a_non_map_bin_is_code_12(aerospike_client: Any, key: Any) -> None:
    aerospike_client.put(key, {"s": "text"})

    with pytest.raises(ex.BinIncompatibleType):
        aerospike_client.operate(key, [mo.map_put("s", "k", 1)])


def test_map_ops_on_a_missing_record_create_it(
    aerospike_client: Any, aerospike_namespace: str, aerospike_set: str
) -> None:
    record_key = (aerospike_namespace, aerospike_set, "fresh")

    aerospike_client.operate(record_key, [mo.map_put("m", "k", "v")])

    assert aerospike_client.get(record_key)[1:] == (
        {"gen": 1, "ttl": 4294967295},
        {"m": {"k": "v"}},
    )
