"""What takes real time, on the embedded server and a real cluster alike:
truncation up to a time, expiry as scans and queries see it, and read-touch.

Real servers keep no clock a test can move, so these sleep: about 2.2 s for
the whole file, the least that lets a one-second TTL expire for sure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import aerospike
import pytest

from aerospike_wsgi_session.testing import scan_until, truncate

AGE_SECONDS = 2.2
TTLS = {"short": 1, "ten": 10, "ever": aerospike.TTL_NEVER_EXPIRE}


@pytest.fixture(scope="module")
def aged_set(aerospike_client: Any, aerospike_namespace: str) -> Iterator[str]:
    """A set whose records were written 2.2 s ago, one per entry of ``TTLS``;
    the record with a TTL of 1 s has expired by then."""
    name = f"r{uuid.uuid4().hex[:12]}"
    for user_key, ttl in TTLS.items():
        key = (aerospike_namespace, name, user_key)
        aerospike_client.put(key, {"k": user_key}, policy={"ttl": ttl})
    time.sleep(AGE_SECONDS)
    yield name
    truncate(aerospike_client, aerospike_namespace, name)


def user_keys(records: list[Any]) -> list[str]:
    """Return the sorted ``k`` bins of scan or query results."""
    return sorted(bins["k"] for _, _, bins in records)


def test_scans_leave_out_expired_records(
    aerospike_client: Any, aerospike_namespace: str, aged_set: str
) -> None:
    records = aerospike_client.scan(aerospike_namespace, aged_set).results()

    assert user_keys(records) == ["ever", "ten"]


def test_queries_leave_out_expired_records(
    aerospike_client: Any, aerospike_namespace: str, aged_set: str
) -> None:
    records = aerospike_client.query(aerospike_namespace, aged_set).results()

    assert user_keys(records) == ["ever", "ten"]


def test_read_touch_resets_the_ttl_but_not_the_generation(
    aerospike_client: Any, aerospike_namespace: str, aged_set: str
) -> None:
    key = (aerospike_namespace, aged_set, "ten")
    aged = aerospike_client.exists(key)[1]

    aerospike_client.get(key, policy={"read_touch_ttl_percent": 100})

    touched = aerospike_client.exists(key)[1]
    assert aged["ttl"] <= 8
    assert touched["ttl"] >= 9
    assert touched["gen"] == aged["gen"] == 1


def test_truncate_up_to_a_time_spares_later_writes(
    aerospike_client: Any, aerospike_namespace: str, aerospike_set: str
) -> None:
    ns, set_name = aerospike_namespace, aerospike_set
    aerospike_client.put((ns, set_name, "old"), {"k": "old"})
    time.sleep(0.002)
    cutoff = time.time_ns()
    aerospike_client.put((ns, set_name, "new"), {"k": "new"})

    truncate(aerospike_client, ns, set_name, before_ns=cutoff)

    assert user_keys(scan_until(aerospike_client, ns, set_name, 1)) == ["new"]
