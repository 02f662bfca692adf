"""The protocol as any server speaks it: logins, compression, truncation from
another process, raw frames and the partition map.

Every test here runs against the embedded server and a real cluster alike;
those that need a server of their own start an embedded one.
"""

from __future__ import annotations

import base64
import re
import socket
import struct
import subprocess
import sys
import time
from typing import Any

import aerospike
import pytest

from aerospike_wsgi_session.testing import AerospikeServer, scan_until

Address = tuple[str, int]
N_PARTITIONS = 4096
TEND_MS = 250  # the client's minimum
RC_OK, RC_BIN_NAME = 0, 21


def proto(version: int, msg_type: int, body: bytes, size: int | None = None) -> bytes:
    """Build a frame with a chosen header."""
    word = version << 56 | msg_type << 48 | (len(body) if size is None else size)
    return struct.pack(">Q", word) + body


def exchange_frame(address: Address, payload: bytes) -> tuple[int, bytes]:
    """Send one frame; return the type and body of the frame answering it."""
    with (
        socket.create_connection(address, timeout=5) as sock,
        sock.makefile("rb") as reader,
    ):
        sock.sendall(payload)
        word = struct.unpack(">Q", reader.read(8))[0]
        body = reader.read(word & 0xFFFF_FFFF_FFFF)
    return word >> 48 & 0xFF, body


def write_frame(key: tuple[str, str, str], bin_name: bytes) -> bytes:
    """A put of one integer bin, built byte by byte as a data frame."""
    digest = bytes(aerospike.calc_digest(*key))
    fields = [(0, key[0].encode()), (1, key[1].encode()), (4, digest)]
    encoded = b"".join(struct.pack(">IB", len(d) + 1, t) + d for t, d in fields)
    op = struct.pack(">IBBBB", 4 + len(bin_name) + 8, 2, 1, 0, len(bin_name))
    header = struct.pack(">BBBBBBIIIHH", 22, 0, 1, 0, 0, 0, 0, 0, 1000, 3, 1)
    return proto(2, 3, header + encoded + op + bin_name + struct.pack(">q", 7))


@pytest.fixture
def key(aerospike_namespace: str, aerospike_set: str) -> tuple[str, str, str]:
    """A key in the test's own set."""
    return (aerospike_namespace, aerospike_set, "k")


def test_compressed_requests(aerospike_client: Any, key: Any) -> None:
    bins = {"text": "abc" * 500}

    aerospike_client.put(key, bins, policy={"compress": True})

    assert aerospike_client.get(key, policy={"compress": True})[2] == bins


def test_login_is_answered_security_not_enabled(
    aerospike_connect: Any, key: Any
) -> None:
    client = aerospike_connect(user="someone", password="secret")

    client.put(key, {"v": 1})

    assert client.get(key)[2] == {"v": 1}


def test_client_truncate_from_another_process(
    aerospike_hosts: list[Address], aerospike_client: Any, key: Any
) -> None:
    # client.truncate() keeps the GIL while it waits, so it can only reach an
    # embedded server that runs in another process.
    aerospike_client.put(key, {"v": 1})
    code = (
        "import aerospike\n"
        f"client = aerospike.client({{'hosts': {aerospike_hosts!r}}})\n"
        f"client.truncate({key[0]!r}, {key[1]!r}, 0)\n"
    )

    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

    assert scan_until(aerospike_client, key[0], key[1], 0) == []
    assert aerospike_client.exists(key)[1] is None


def test_info_over_a_raw_socket(aerospike_hosts: list[Address]) -> None:
    msg_type, body = exchange_frame(aerospike_hosts[0], proto(2, 1, b"build\nnope\n"))

    build, unknown = body.decode().splitlines()
    assert msg_type == 1
    assert re.fullmatch(r"build\t\d+\.\d+\.\d+(\.\d+)*", build)
    assert unknown.startswith("nope\tERROR:4:")


@pytest.mark.parametrize(
    ("length", "result_code"),
    [(15, RC_OK), (16, RC_BIN_NAME)],
    ids=["15-bytes", "16-bytes"],
)
def test_bin_name_length_is_checked_by_the_server(
    aerospike_hosts: list[Address],
    aerospike_client: Any,
    key: Any,
    length: int,
    result_code: int,
) -> None:
    # The client refuses a long bin name before sending it, so only a
    # hand-built frame reaches the server's own check.
    msg_type, body = exchange_frame(aerospike_hosts[0], write_frame(key, b"b" * length))

    assert (msg_type, body[5]) == (3, result_code)
    stored = aerospike_client.exists(key)[1]
    assert (stored is not None) is (result_code == RC_OK)


def master_partitions(replicas: str, namespace: str) -> int:
    """The partitions a node masters, as the bits of an integer."""
    for entry in replicas.strip().split(";"):
        name, _, value = entry.partition(":")
        if name == namespace:
            bitmap = value.split(",")[2]
            assert len(bitmap) == 684
            return int.from_bytes(base64.b64decode(bitmap), "big")
    return 0


def test_every_partition_has_a_master(
    aerospike_client: Any, aerospike_namespace: str
) -> None:
    answers = aerospike_client.info_all("replicas")

    owned = 0
    for error, replicas in answers.values():
        assert error is None
        owned |= master_partitions(replicas, aerospike_namespace)
    assert owned == (1 << N_PARTITIONS) - 1
    assert len(aerospike_client.get_nodes()) == len(answers)


def wait_for_tends(server: AerospikeServer, count: int) -> bool:
    """Wait (bounded) for ``count`` more info calls; return whether they came."""
    target = server.stats["info"] + count
    deadline = time.monotonic() + 10 * count * TEND_MS / 1000
    while server.stats["info"] < target and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.stats["info"] >= target


def test_the_embedded_server_is_one_node_across_tends(
    aerospike_connect: Any,
) -> None:
    with AerospikeServer() as server:
        client = aerospike_connect(server.hosts, tend_interval=TEND_MS)
        node = client.info_all("node")

        assert wait_for_tends(server, 2)
        client.put(("test", "demo", "k"), {"v": 1})

        assert client.get_nodes() == server.hosts
        assert [n["node_name"] for n in client.get_node_names()] == list(node)
        assert client.get(("test", "demo", "k"))[2] == {"v": 1}
