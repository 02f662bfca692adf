"""Single-record commands, as a real Aerospike 8.x server answers them.

These tests use only the session client and a per-test set, so they also run
against a real cluster (``AEROSPIKE_HOSTS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers.operations import operations as op

Key = tuple[str, str, Any]
NEVER = 4294967295
TEN_YEARS = 315_360_000


@pytest.fixture
def key(aerospike_namespace: str, aerospike_set: str) -> Callable[[Any], Key]:
    """Build keys in the test's own set."""
    return lambda user_key: (aerospike_namespace, aerospike_set, user_key)


def test_put_then_get_returns_every_bin_type(aerospike_client: Any, key: Any) -> None:
    bins = {
        "i": -7,
        "s": "héllo",
        "f": 1.5,
        "b": b"\x00\xff",
        "l": [1, "a", [2.5]],
        "m": {"x": 1, "y": {"z": b"q"}},
        "t": True,
    }
    aerospike_client.put(key("a"), bins)

    _, meta, stored = aerospike_client.get(key("a"))

    assert stored == bins
    assert meta == {"gen": 1, "ttl": NEVER}


def test_select_returns_only_the_named_bins(aerospike_client: Any, key: Any) -> None:
    aerospike_client.put(key("a"), {"x": 1, "y": 2, "z": 3})

    assert aerospike_client.select(key("a"), ["x", "z"])[2] == {"x": 1, "z": 3}


def test_missing_record_reads_as_not_found(aerospike_client: Any, key: Any) -> None:
    assert aerospike_client.exists(key("nope"))[1] is None
    with pytest.raises(ex.RecordNotFound):
        aerospike_client.get(key("nope"))


def test_every_write_adds_one_to_the_generation(
    aerospike_client: Any, key: Any
) -> None:
    aerospike_client.put(key("a"), {"x": 1})
    aerospike_client.put(key("a"), {"y": 2})
    aerospike_client.touch(key("a"), 100)

    _, meta, bins = aerospike_client.get(key("a"))

    assert meta["gen"] == 3
    assert bins == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    ("exists", "present", "outcome"),
    [
        (aerospike.POLICY_EXISTS_IGNORE, False, {"new": 1}),
        (aerospike.POLICY_EXISTS_IGNORE, True, {"old": 1, "new": 1}),
        (aerospike.POLICY_EXISTS_CREATE, False, {"new": 1}),
        (aerospike.POLICY_EXISTS_CREATE, True, ex.RecordExistsError),
        (aerospike.POLICY_EXISTS_UPDATE, False, ex.RecordNotFound),
        (aerospike.POLICY_EXISTS_UPDATE, True, {"old": 1, "new": 1}),
        (aerospike.POLICY_EXISTS_REPLACE, False, ex.RecordNotFound),
        (aerospike.POLICY_EXISTS_REPLACE, True, {"new": 1}),
        (aerospike.POLICY_EXISTS_CREATE_OR_REPLACE, False, {"new": 1}),
        (aerospike.POLICY_EXISTS_CREATE_OR_REPLACE, True, {"new": 1}),
    ],
    ids=[
        "ignore-new",
        "ignore-merge",
        "create-new",
        "create-exists",
        "update-missing",
        "update-merge",
        "replace-missing",
        "replace",
        "create-or-replace-new",
        "create-or-replace",
    ],
)
def test_exists_policies(
    aerospike_client: Any, key: Any, exists: int, present: bool, outcome: Any
) -> None:
    if present:
        aerospike_client.put(key("a"), {"old": 1})
    policy = {"exists": exists}

    if isinstance(outcome, dict):
        aerospike_client.put(key("a"), {"new": 1}, policy=policy)
        assert aerospike_client.get(key("a"))[2] == outcome
    else:
        with pytest.raises(outcome):
            aerospike_client.put(key("a"), {"new": 1}, policy=policy)


@pytest.mark.parametrize(
    ("gen_policy", "sent", "accepted"),
    [
        (aerospike.POLICY_GEN_EQ, 2, True),
        (aerospike.POLICY_GEN_EQ, 1, False),
        (aerospike.POLICY_GEN_GT, 3, True),
        (aerospike.POLICY_GEN_GT, 2, False),
    ],
    ids=["eq-match", "eq-stale", "gt-newer", "gt-equal"],
)
def test_generation_policies(
    aerospike_client: Any, key: Any, gen_policy: int, sent: int, accepted: bool
) -> None:
    aerospike_client.put(key("a"), {"v": 1})
    aerospike_client.put(key("a"), {"v": 2})
    policy = {"gen": gen_policy}

    if accepted:
        aerospike_client.put(key("a"), {"v": 3}, meta={"gen": sent}, policy=policy)
        assert aerospike_client.get(key("a"))[1]["gen"] == 3
    else:
        with pytest.raises(ex.RecordGenerationError):
            aerospike_client.put(key("a"), {"v": 3}, meta={"gen": sent}, policy=policy)
        assert aerospike_client.get(key("a"))[2] == {"v": 2}


def test_generation_check_on_missing_record_is_code_3(
    aerospike_client: Any, key: Any
) -> None:
    policy = {"gen": aerospike.POLICY_GEN_EQ}

    with pytest.raises(ex.RecordGenerationError):
        aerospike_client.put(key("a"), {"v": 1}, meta={"gen": 5}, policy=policy)
    assert aerospike_client.exists(key("a"))[1] is None


def test_ttl_is_reported_back(aerospike_client: Any, key: Any) -> None:
    aerospike_client.put(key("a"), {"v": 1}, policy={"ttl": 1000})

    assert 990 <= aerospike_client.get(key("a"))[1]["ttl"] <= 1000


def test_ttl_never_expire_and_dont_update(aerospike_client: Any, key: Any) -> None:
    aerospike_client.put(key("a"), {"v": 1}, policy={"ttl": aerospike.TTL_NEVER_EXPIRE})
    assert aerospike_client.get(key("a"))[1]["ttl"] == NEVER

    aerospike_client.put(key("a"), {"v": 2}, policy={"ttl": 500})
    aerospike_client.put(key("a"), {"v": 3}, policy={"ttl": aerospike.TTL_DONT_UPDATE})

    assert 490 <= aerospike_client.get(key("a"))[1]["ttl"] <= 500


def test_explicit_namespace_default_ttl(aerospike_client: Any, key: Any) -> None:
    # The namespace's default-ttl is 0 (never expire), as on the real server
    # these tests were checked against.
    aerospike_client.put(key("a"), {"v": 1}, policy={"ttl": 500})
    default = {"ttl": aerospike.TTL_NAMESPACE_DEFAULT}

    aerospike_client.put(key("a"), {"v": 2}, policy=default)

    assert aerospike_client.get(key("a"))[1] == {"gen": 2, "ttl": NEVER}


def test_ttl_over_ten_years_is_a_parameter_error(
    aerospike_client: Any, key: Any
) -> None:
    with pytest.raises(ex.InvalidRequest):
        aerospike_client.put(key("a"), {"v": 1}, policy={"ttl": TEN_YEARS + 1})


@pytest.mark.filterwarnings("ignore:meta parameter is deprecated")
def test_remove_deletes_and_checks_the_generation(
    aerospike_client: Any, key: Any
) -> None:
    aerospike_client.put(key("a"), {"v": 1})
    stale = {"gen": aerospike.POLICY_GEN_EQ}

    with pytest.raises(ex.RecordGenerationError):
        aerospike_client.remove(key("a"), meta={"gen": 7}, policy=stale)
    aerospike_client.remove(key("a"), meta={"gen": 1}, policy=stale)

    assert aerospike_client.exists(key("a"))[1] is None
    with pytest.raises(ex.RecordNotFound):
        aerospike_client.remove(key("a"))


@pytest.mark.filterwarnings("ignore:meta parameter is deprecated")
def test_remove_with_a_generation_check_on_a_missing_record_is_code_2(
    aerospike_client: Any, key: Any
) -> None:
    policy = {"gen": aerospike.POLICY_GEN_EQ}

    with pytest.raises(ex.RecordNotFound):
        aerospike_client.remove(key("a"), meta={"gen": 1}, policy=policy)


def test_touch_needs_an_existing_record(aerospike_client: Any, key: Any) -> None:
    with pytest.raises(ex.RecordNotFound):
        aerospike_client.touch(key("a"), 100)

    assert aerospike_client.exists(key("a"))[1] is None


def test_writing_none_removes_bins_and_then_the_record(
    aerospike_client: Any, key: Any
) -> None:
    aerospike_client.put(key("a"), {"x": 1, "y": 2})

    aerospike_client.put(key("a"), {"x": None})
    assert aerospike_client.get(key("a"))[2] == {"y": 2}
    aerospike_client.remove_bin(key("a"), ["y"])

    assert aerospike_client.exists(key("a"))[1] is None


def test_bin_name_over_15_bytes_is_refused(aerospike_client: Any, key: Any) -> None:
    with pytest.raises(ex.BinNameError):
        aerospike_client.put(key("a"), {"b" * 16: 1})


@pytest.mark.parametrize(
    ("size", "fits"),
    [(1_048_517, True), (1_048_577, False)],
    ids=["largest-accepted", "one-over-a-mebibyte"],
)
def test_record_size_limit(
    aerospike_client: Any, key: Any, size: int, fits: bool
) -> None:
    if fits:
        aerospike_client.put(key("a"), {"b": b"\0" * size})
        assert len(aerospike_client.get(key("a"))[2]["b"]) == size
    else:
        with pytest.raises(ex.RecordTooBig):
            aerospike_client.put(key("a"), {"b": b"\0" * size})


@pytest.mark.parametrize(
    ("bin_name", "policy"),
    [("b" * 15, {}), ("b", {"key": aerospike.POLICY_KEY_SEND})],
    ids=["long-bin-name", "stored-key"],
)
def test_bin_names_and_stored_keys_count_towards_the_size(
    aerospike_client: Any, key: Any, bin_name: str, policy: dict[str, int]
) -> None:
    # 1,048,517 bytes is the largest value a bin named "b" takes.
    with pytest.raises(ex.RecordTooBig):
        aerospike_client.put(key("a"), {bin_name: b"\0" * 1_048_517}, policy=policy)


def test_send_key_stores_the_user_key(aerospike_client: Any, key: Any) -> None:
    policy = {"key": aerospike.POLICY_KEY_SEND}
    # The client sends bytes keys as strings; bytearray keys travel as blobs.
    for user_key in ("s", 7, bytearray(b"\x01\x02")):
        aerospike_client.put(key(user_key), {"v": 1}, policy=policy)

    ns, set_name, _ = key(None)
    records = aerospike_client.scan(ns, set_name).results()
    found = {
        bytes(k[2]) if isinstance(k[2], bytearray) else k[2] for k, _, _ in records
    }

    assert found == {"s", 7, b"\x01\x02"}


def test_operate_arithmetic_and_strings(aerospike_client: Any, key: Any) -> None:
    aerospike_client.put(key("a"), {"n": 5, "s": "mid"})
    ops = [
        op.increment("n", 3),
        op.append("s", ">"),
        op.prepend("s", "<"),
        op.increment("new", 2),
        op.read("n"),
        op.read("s"),
        op.read("new"),
    ]

    _, meta, bins = aerospike_client.operate(key("a"), ops)

    assert bins == {"n": 8, "s": "<mid>", "new": 2}
    assert meta["gen"] == 2


def test_operate_type_mismatch_is_code_12(aerospike_client: Any, key: Any) -> None:
    aerospike_client.put(key("a"), {"s": "text", "n": 1})

    with pytest.raises(ex.BinIncompatibleType):
        aerospike_client.operate(key("a"), [op.increment("s", 1)])
    with pytest.raises(ex.BinIncompatibleType):
        aerospike_client.operate(key("a"), [op.append("n", "x")])
    assert aerospike_client.get(key("a"))[1]["gen"] == 1


def test_operate_reads_on_missing_record_fail(aerospike_client: Any, key: Any) -> None:
    with pytest.raises(ex.RecordNotFound):
        aerospike_client.operate(key("a"), [op.read("x")])


def test_operate_write_creates_missing_record(aerospike_client: Any, key: Any) -> None:
    aerospike_client.operate(key("a"), [op.write("x", 1)])

    assert aerospike_client.get(key("a"))[1:] == ({"gen": 1, "ttl": NEVER}, {"x": 1})


def test_operate_touch_and_delete(aerospike_client: Any, key: Any) -> None:
    aerospike_client.put(key("a"), {"x": 1})

    ops = [op.touch(), op.read("x")]
    _, meta, bins = aerospike_client.operate(key("a"), ops, policy={"ttl": 300})
    assert (meta["gen"], bins) == (2, {"x": 1})
    assert 290 <= meta["ttl"] <= 300
    aerospike_client.operate(key("a"), [op.delete()])

    assert aerospike_client.exists(key("a"))[1] is None


def test_operate_ordered_returns_each_result(aerospike_client: Any, key: Any) -> None:
    aerospike_client.put(key("a"), {"n": 1})
    ops = [op.read("n"), op.increment("n", 4), op.read("n")]

    _, _, results = aerospike_client.operate_ordered(key("a"), ops)

    assert results == [("n", 1), ("n", 5)]


def test_missing_namespace_is_code_20(
    aerospike_client: Any, aerospike_set: str
) -> None:
    with pytest.raises(ex.NamespaceNotFound):
        aerospike_client.put(("no_such_namespace", aerospike_set, "a"), {"v": 1})
