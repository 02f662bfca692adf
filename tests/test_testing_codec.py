"""The server's own codecs: Aerospike msgpack and RIPEMD-160 key digests."""

from __future__ import annotations

import hashlib
from typing import Any

import aerospike
import pytest

from aerospike_wsgi_session.testing import msgpack
from aerospike_wsgi_session.testing.ripemd160 import (
    key_digest,
    key_field,
    ripemd160_pure,
)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ({"x": 1}, "81a2037801"),
        ([1, "a"], "9201a20361"),
        (b"\x01", "a20401"),
        (-1, "ff"),
        (300, "cd012c"),
        (1.5, "cb3ff8000000000000"),
        (None, "c0"),
    ],
    ids=["map", "list", "blob", "negative", "uint16", "double", "nil"],
)
def test_msgpack_matches_the_client_bytes(value: Any, wire: str) -> None:
    assert msgpack.packb(value).hex() == wire
    assert msgpack.unpackb(bytes.fromhex(wire)) == value


def test_msgpack_round_trips_large_and_nested_values() -> None:
    value = {"k": ["x" * 70_000, -(2**40), 2**63, {"n": [True, False]}], 5: b"b"}

    assert msgpack.unpackb(msgpack.packb(value)) == value


def test_key_ordered_map_keeps_its_flag_and_sorts_keys() -> None:
    ordered = msgpack.CdtMap({"b": 2, "a": 1})
    ordered.flags = 1

    decoded = msgpack.unpackb(msgpack.packb(ordered))

    assert list(decoded) == ["a", "b"] and decoded.flags == 1


def test_msgpack_rejects_truncated_input() -> None:
    with pytest.raises(msgpack.MsgpackError):
        msgpack.unpackb(bytes.fromhex("92a203"))


@pytest.mark.parametrize("size", [0, 1, 55, 56, 64, 119, 1000])
def test_pure_ripemd160_matches_openssl(size: int) -> None:
    data = bytes(range(256)) * 4

    assert ripemd160_pure(data[:size]) == hashlib.new("ripemd160", data[:size]).digest()


@pytest.mark.parametrize("user_key", ["k1", 42, -3, bytearray(b"\x00\x01")])
def test_key_digest_matches_the_client(user_key: Any) -> None:
    expected = bytes(aerospike.calc_digest("test", "demo", user_key))

    assert key_digest("demo", key_field(user_key)) == expected
