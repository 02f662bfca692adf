"""The circuit breaker, alone and in front of a store that cannot connect."""

from __future__ import annotations

import pytest

from aerospike_wsgi_session import AerospikeStore, StoreUnavailableError
from aerospike_wsgi_session.breaker import CircuitBreaker
from aerospike_wsgi_session.testing import AerospikeServer, ManualClock, TruncateError


def tripped(cooldown: float = 1.0) -> tuple[CircuitBreaker, ManualClock]:
    """A breaker that has just opened, and the manual clock it runs on."""
    clock = ManualClock(start=0)
    breaker = CircuitBreaker(threshold=3, cooldown=cooldown, clock=clock)
    for _ in range(3):
        breaker.failed()
    return breaker, clock


def test_breaker_opens_after_a_run_of_failures() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=1.0)
    breaker.failed()
    breaker.failed()
    assert breaker.allow()

    breaker.failed()

    assert breaker.open
    assert not breaker.allow()


def test_a_success_ends_the_run() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=1.0)
    breaker.failed()
    breaker.succeeded()
    breaker.failed()

    assert not breaker.open


def test_one_probe_after_the_cooldown() -> None:
    breaker, clock = tripped(cooldown=1.0)
    clock.advance(0.9)
    assert not breaker.allow()

    clock.advance(0.1)

    assert [breaker.allow() for _ in range(3)] == [True, False, False]


@pytest.mark.parametrize(
    ("probe_succeeds", "open_after"), [(True, False), (False, True)], ids=str
)
def test_the_probe_decides(probe_succeeds: bool, open_after: bool) -> None:
    breaker, clock = tripped(cooldown=1.0)
    clock.advance(1.0)
    assert breaker.allow()

    if probe_succeeds:
        breaker.succeeded()
    else:
        breaker.failed()

    assert breaker.open is open_after
    assert breaker.allow() is not open_after


def test_threshold_zero_never_opens() -> None:
    breaker = CircuitBreaker(threshold=0)
    for _ in range(100):
        breaker.failed()

    assert breaker.allow()


@pytest.mark.parametrize("options", [{"threshold": -1}, {"cooldown": -0.5}])
def test_negative_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="negative"):
        CircuitBreaker(**options)  # type: ignore[arg-type]


def failures(store: AerospikeStore, calls: int) -> list[str]:
    """The messages of ``calls`` loads that all fail."""
    messages = []
    for _ in range(calls):
        with pytest.raises(StoreUnavailableError) as caught:
            store.load("some-key")
        messages.append(str(caught.value))
    return messages


def test_breaker_opens_when_the_client_cannot_even_connect(
    aerospike_server: AerospikeServer,
) -> None:
    aerospike_server.stop()
    store = AerospikeStore(hosts=aerospike_server.hosts, breaker_threshold=2)

    messages = failures(store, 4)

    assert ["connect" in message for message in messages] == [True, True, False, False]
    assert store.breaker.open
    counted = store.metrics.snapshot()
    assert (counted["errors.unavailable"], counted["errors.circuit_open"]) == (2, 2)


def test_probe_that_connects_closes_the_breaker(
    aerospike_server: AerospikeServer,
) -> None:
    aerospike_server.stop()
    store = AerospikeStore(hosts=aerospike_server.hosts, breaker_threshold=2)
    clock = ManualClock(start=0)
    store.breaker = CircuitBreaker(threshold=2, cooldown=1.0, clock=clock)
    failures(store, 2)
    aerospike_server.start()

    clock.advance(1.0)

    assert store.load("some-key") is None
    assert not store.breaker.open
    store.close()


def test_a_refusal_raised_inside_a_probe_closes_the_breaker() -> None:
    # A store error the called code raises itself (a node refusing a
    # truncate) is an answer from the server, like any error code.
    store = AerospikeStore(client=object())
    store.breaker, clock = tripped(cooldown=1.0)
    clock.advance(1.0)

    def refused() -> None:
        raise TruncateError("node A refused 'truncate'")

    with pytest.raises(TruncateError):
        store._call("clear", refused)

    assert not store.breaker.open
    assert store.breaker.allow()
