"""The benchmark systems do what the benchmark says they do.

Each system runs the scenarios once against the test backend; the records
are then read back, so a system that skipped its Aerospike calls (and would
look fast for it) fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import apps
import contention
import run

SCENARIOS = ["untouched", "read", "write", "write", "big"]


def run_scenarios(system: apps.System) -> tuple[str, str]:
    """Seed a small and a big session, run every scenario; return the cookies."""
    small = apps.seed(system.app, apps.small_session())
    big = apps.seed(system.app, apps.sized_session(50_000))
    for scenario in SCENARIOS:
        cookie = big if scenario == "big" else small
        status, _ = apps.call(system.app, apps.environ_for(f"/{scenario}", cookie))
        assert status == "200 OK", scenario
    return small, big


def middleware_data(system: apps.System, cookie: str) -> dict[str, Any]:
    manager = system.app.manager  # type: ignore[attr-defined]
    session_id, _ = manager.signer.unsign(cookie.partition("=")[2])
    return dict(manager.store.load(manager.signer.record_key(session_id)).data)


def test_middleware_stores_what_the_scenarios_change(
    aerospike_hosts: Any,
) -> None:
    system = apps.middleware_system({"hosts": aerospike_hosts})
    small, big = run_scenarios(system)

    assert middleware_data(system, small)["n"] == 2
    assert middleware_data(system, big)["n"] == 1000
    system.close()


def test_the_estimate_counts_the_aerospike_calls_of_each_scenario(
    aerospike_hosts: Any,
) -> None:
    waits = run.aerospike_waits({"hosts": aerospike_hosts}, run.SMOKE)

    assert {name: wait.calls for name, wait in waits.items()} == {
        "read": 1,
        "write": 2,
        "new": 1,
        "big": 2,
    }
    assert all(0 < wait.waited_us < wait.request_us for wait in waits.values())


def test_floor_makes_the_same_records(aerospike_hosts: Any) -> None:
    floor = apps.floor_system({"hosts": aerospike_hosts})
    small, big = run_scenarios(floor)

    def stored(cookie: str) -> dict[str, Any]:
        session_id = cookie.partition("=")[2].partition(".")[0]
        _, _, bins = floor.app.client.get(  # type: ignore[attr-defined]
            (apps.NAMESPACE, apps.SET, session_id)
        )
        return dict(bins)

    assert stored(small)["data"]["n"] == "2"
    assert stored(big)["data"]["n"] == "1000"
    assert set(stored(small)) == {"data", "_session", "_created"}
    floor.close()


def test_floor_refuses_a_forged_cookie(aerospike_hosts: Any) -> None:
    floor = apps.floor_system({"hosts": aerospike_hosts})
    small = apps.seed(floor.app, apps.small_session())
    forged = small[:-4] + ("AAAA" if not small.endswith("AAAA") else "BBBB")

    status, _ = apps.call(floor.app, apps.environ_for("/read", forged))

    assert status.startswith("403")
    floor.close()


@pytest.mark.parametrize("path", ["/new", "/change"], ids=["new", "change"])
def test_beaker_memory_answers_every_path(path: str) -> None:
    system = apps.beaker_system()
    cookie = apps.seed(system.app, {f"c{i}": 0 for i in range(3)})

    status, _ = apps.call(system.app, apps.environ_for(path, cookie, "keys=3"))

    assert status == "200 OK"


def test_contention_keeps_every_increment_of_disjoint_keys(
    aerospike_server: Any,
) -> None:
    scenario = contention.Scenario("disjoint", threads=4, requests=5)

    outcome = contention.Bench(aerospike_server, scenario).run()

    assert outcome.answers == [200] * 20
    assert outcome.kept == 20
    assert outcome.retries == 0


def test_contention_counts_the_retries_of_busy_writes(
    aerospike_server: Any,
) -> None:
    scenario = contention.Scenario("busy", 2, 5, hot=True, busy_share=0.3)

    outcome = contention.Bench(aerospike_server, scenario).run()

    assert outcome.retries == 3
    assert outcome.errors == 0
    assert len(outcome.saves) == 10
