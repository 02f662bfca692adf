"""What a user sees when Aerospike is down, slow, restarting or full.

Every failure runs under both policies. A load that fails answers ``503``
under ``"raise"`` and goes on with an empty read-only session under
``"degrade"``; a save that fails answers ``503`` under both, since the
application already acted on changes that could not be stored. Each test
also checks what was logged, and reads the stored session back with a store
of its own to show that nothing was lost or corrupted.

These tests steer the embedded server, so they skip on a real cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from webtest import TestApp

from aerospike_wsgi_session import (
    AerospikeStore,
    SessionMiddleware,
    SessionTooLargeError,
    SessionUnavailableError,
    WriteInDoubtError,
)
from aerospike_wsgi_session.breaker import CircuitBreaker
from aerospike_wsgi_session.signing import Signer
from aerospike_wsgi_session.store import SessionRecord
from aerospike_wsgi_session.testing import AerospikeServer, ManualClock

from .helpers import SECRET, body_json, session_app

SET = "outage_set"
TIMEOUT_MS = 100
FAST = {"socket_timeout": TIMEOUT_MS, "total_timeout": TIMEOUT_MS}
POLICIES = {name: dict(FAST) for name in ("read", "write", "operate", "remove")}
#: A server delay well past the client's total timeout.
SLOW = 0.3

Fault = Callable[[AerospikeServer], None]


class MidRequest:
    """Runs armed faults inside the next request, after its session loaded."""

    def __init__(self) -> None:
        self.faults: list[Callable[[], object]] = []

    def arm(self, fault: Callable[[], object]) -> None:
        self.faults.append(fault)

    def wrap(self, app: Any) -> Any:
        def faulty(environ: dict[str, Any], start_response: Any) -> Any:
            environ["aerospike.session"].get("name")  # loads the session now
            while self.faults:
                self.faults.pop(0)()
            return app(environ, start_response)

        return faulty


@pytest.fixture
def fast_store(aerospike_server: AerospikeServer) -> Iterator[AerospikeStore]:
    """A store with 100 ms client timeouts on the test's embedded server."""
    store = AerospikeStore(set=SET, hosts=aerospike_server.hosts, policies=POLICIES)
    yield store
    store.close()


@pytest.fixture
def mid_request() -> MidRequest:
    return MidRequest()


@pytest.fixture
def visit(make_app: Any, fast_store: AerospikeStore, mid_request: MidRequest) -> Any:
    """``visit(policy)``: a client of the session app under that policy."""

    def build(policy: str, **options: Any) -> TestApp:
        app = mid_request.wrap(session_app)
        return make_app(app, store=fast_store, on_store_error=policy, **options)

    return build


def poll(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Call ``check`` until it returns something true, for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def stored(server: AerospikeServer, client: TestApp) -> dict[str, Any]:
    """The session data of the client's cookie, as the server holds it now.

    Stops and starts the server first, which waits for the commands still
    in flight on its threads, then reads with a store of its own.
    """
    server.stop()
    server.start()
    signer = Signer(SECRET)
    verified = signer.unsign(client.cookies["session"])
    assert verified is not None
    reader = AerospikeStore(set=SET, hosts=server.hosts, breaker_threshold=0)
    try:
        record = poll(lambda: _try_load(reader, signer.record_key(verified[0])))
    finally:
        reader.close()
    return dict(record.data)


def _try_load(store: AerospikeStore, record_key: str) -> SessionRecord | None:
    try:
        return store.load(record_key)
    except Exception:
        return None


def package_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Warnings and errors of the package itself, not of the embedded server."""
    return [
        record
        for record in caplog.records
        if record.levelno >= logging.WARNING
        and record.name.startswith("aerospike_wsgi_session")
        and not record.name.startswith("aerospike_wsgi_session.testing")
    ]


def assert_leaks_nothing(response: Any, client: TestApp, server: Any) -> None:
    """The 503 body names no session, host, port, namespace or set."""
    text = response.text.lower()
    cookie = client.cookies["session"]
    for secret in (cookie, cookie.partition(".")[0], "127.0.0.1", str(server.port)):
        assert secret.lower() not in text
    for word in ("test", SET, "traceback", "aerospike", "error"):
        assert word not in text


def stop(server: AerospikeServer) -> None:
    server.stop()


def hang(server: AerospikeServer) -> None:
    server.delay = SLOW


def fail_reads(code: int) -> Fault:
    return lambda server: server.fail_next(1, code, commands="read")


LOAD_FAULTS = [
    pytest.param(stop, "Aerospike unavailable", id="down"),
    pytest.param(hang, "TimeoutError", id="slow"),
    pytest.param(fail_reads(1), "ServerError 1", id="server-error"),
]


@pytest.mark.parametrize(("fault", "cause"), LOAD_FAULTS)
def test_load_failure_under_raise_answers_503(
    visit: Any,
    aerospike_server: AerospikeServer,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    cause: str,
) -> None:
    client = visit("raise")
    client.get("/set/name?value=ada")
    fault(aerospike_server)

    response = client.get("/get/name", expect_errors=True)
    aerospike_server.delay = 0

    assert response.status_int == 503
    assert response.headers["Retry-After"] == "5"
    assert "Set-Cookie" not in response.headers
    assert_leaks_nothing(response, client, aerospike_server)
    [logged] = package_records(caplog)
    assert logged.levelno == logging.ERROR
    assert cause in logged.getMessage()
    assert stored(aerospike_server, client) == {"name": "ada"}


@pytest.mark.parametrize(("fault", "cause"), LOAD_FAULTS)
def test_load_failure_under_degrade_goes_on_without_a_session(
    visit: Any,
    aerospike_server: AerospikeServer,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    cause: str,
) -> None:
    client = visit("degrade")
    client.get("/set/name?value=ada")
    fault(aerospike_server)

    response = client.get("/get/name")
    aerospike_server.delay = 0

    assert body_json(response) is None
    assert "Set-Cookie" not in response.headers
    [logged] = package_records(caplog)
    assert logged.levelno == logging.WARNING
    assert cause in logged.getMessage()
    assert stored(aerospike_server, client) == {"name": "ada"}


def fail_writes(code: int) -> Fault:
    return lambda server: server.fail_next(1, code, commands="write")


SAVE_FAULTS = [
    pytest.param(stop, "Aerospike unavailable", "ada", id="down"),
    # The server applies the delayed write once it wakes: in doubt, and landed.
    pytest.param(hang, "may have been applied", "grace", id="slow"),
    pytest.param(fail_writes(8), "ServerFull 8", "ada", id="full"),
    pytest.param(fail_writes(22), "ForbiddenError 22", "ada", id="forbidden"),
]


@pytest.mark.parametrize("policy", ["raise", "degrade"])
@pytest.mark.parametrize(("fault", "cause", "kept"), SAVE_FAULTS)
def test_save_failure_answers_503_under_both_policies(
    visit: Any,
    mid_request: MidRequest,
    aerospike_server: AerospikeServer,
    caplog: pytest.LogCaptureFixture,
    policy: str,
    fault: Fault,
    cause: str,
    kept: str,
) -> None:
    client = visit(policy)
    client.get("/set/name?value=ada")
    mid_request.arm(lambda: fault(aerospike_server))

    response = client.get("/set/name?value=grace", expect_errors=True)
    aerospike_server.delay = 0

    assert response.status_int == 503
    assert "Set-Cookie" not in response.headers
    assert_leaks_nothing(response, client, aerospike_server)
    [logged] = package_records(caplog)
    assert cause in logged.getMessage()
    assert stored(aerospike_server, client) == {"name": kept}


@pytest.mark.parametrize("policy", ["raise", "degrade"])
def test_record_too_big_reaches_the_application(
    visit: Any,
    fast_store: AerospikeStore,
    aerospike_server: AerospikeServer,
    policy: str,
) -> None:
    client = visit(policy)
    client.get("/set/name?value=ada")
    aerospike_server.fail_next(1, 13, commands="write")

    # Not a 503: trying again later cannot make the session fit.
    with pytest.raises(SessionTooLargeError):
        client.get("/set/name?value=grace")

    assert fast_store.metrics.snapshot()["errors.too_big"] == 1
    assert stored(aerospike_server, client) == {"name": "ada"}


@pytest.mark.parametrize("policy", ["raise", "degrade"])
def test_restart_inside_a_request_loses_nothing(
    visit: Any,
    mid_request: MidRequest,
    aerospike_server: AerospikeServer,
    caplog: pytest.LogCaptureFixture,
    policy: str,
) -> None:
    client = visit(policy)
    client.get("/set/name?value=ada")
    mid_request.arm(aerospike_server.restart)

    response = client.get("/set/name?value=grace")

    assert response.status_int == 200
    assert package_records(caplog) == []
    assert body_json(client.get("/get/name")) == "grace"
    assert stored(aerospike_server, client) == {"name": "grace"}


def test_write_that_times_out_after_sending_is_in_doubt_and_not_retried(
    visit: Any,
    mid_request: MidRequest,
    fast_store: AerospikeStore,
    aerospike_server: AerospikeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = visit("raise")
    client.get("/set/name?value=ada")
    aerospike_server.stats.clear()
    mid_request.arm(lambda: hang(aerospike_server))

    response = client.get("/set/name?value=grace", expect_errors=True)
    aerospike_server.delay = 0

    assert response.status_int == 503
    assert "may have been applied" in caplog.text
    assert fast_store.metrics.snapshot()["errors.in_doubt"] == 1
    assert stored(aerospike_server, client) == {"name": "grace"}
    assert aerospike_server.stats["operate"] == 1


def test_create_in_doubt_raises_and_is_sent_once(
    fast_store: AerospikeStore, aerospike_server: AerospikeServer
) -> None:
    aerospike_server.delay = SLOW

    with pytest.raises(WriteInDoubtError):
        fast_store.save("key", {"a": 1}, SessionRecord.new(0.0), ttl=0)

    aerospike_server.delay = 0
    aerospike_server.restart()
    assert aerospike_server.stats["put"] == 1


def burst(client: TestApp, count: int = 20) -> list[int]:
    """The statuses of ``count`` reads of the client's session, all at once."""
    cookie = client.cookies["session"]
    statuses: list[int] = []

    def one_request() -> None:
        other = TestApp(client.app, cookiejar=None)
        other.set_cookie("session", cookie)
        statuses.append(other.get("/get/name", expect_errors=True).status_int)

    threads = [threading.Thread(target=one_request) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def waited(store: AerospikeStore) -> int:
    """How many store calls waited for Aerospike and got no answer."""
    counters = store.metrics.snapshot()
    return int(
        counters.get("errors.unavailable", 0) + counters.get("errors.in_doubt", 0)
    )


@pytest.mark.parametrize("fault", [stop, hang], ids=["down", "hung"])
def test_concurrent_requests_on_a_dead_server_wait_once_at_most(
    visit: Any,
    fast_store: AerospikeStore,
    aerospike_server: AerospikeServer,
    fault: Fault,
) -> None:
    # A breaker that stays open once it opens: its clock never moves.
    fast_store.breaker = CircuitBreaker(threshold=5, clock=ManualClock(start=0))
    client = visit("raise")
    client.get("/set/name?value=ada")
    fault(aerospike_server)

    first = burst(client)
    waited_first = waited(fast_store)
    second = burst(client)
    aerospike_server.delay = 0

    # Each request makes one call, bounded by the client's total timeout.
    # Calls already under way when the breaker opens may still wait; every
    # later one is refused at once.
    assert first == second == [503] * 20
    assert 5 <= waited_first <= 20
    assert waited(fast_store) == waited_first
    assert fast_store.metrics.snapshot()["errors.circuit_open"] == 40 - waited_first


def test_breaker_fails_fast_then_probes_once_per_cooldown(
    visit: Any, fast_store: AerospikeStore, aerospike_server: AerospikeServer
) -> None:
    clock = ManualClock(start=0)
    fast_store.breaker = CircuitBreaker(threshold=3, cooldown=0.2, clock=clock)
    client = visit("raise")
    client.get("/set/name?value=ada")
    aerospike_server.fail_next(1000, 9, commands="read")

    for _ in range(3):
        assert client.get("/get/name", expect_errors=True).status_int == 503
    reached = aerospike_server.stats["get"]
    for _ in range(4):
        assert client.get("/get/name", expect_errors=True).status_int == 503

    assert fast_store.breaker.open
    assert aerospike_server.stats["get"] == reached
    assert fast_store.metrics.snapshot()["errors.circuit_open"] == 4

    clock.advance(0.2)
    assert client.get("/get/name", expect_errors=True).status_int == 503
    probed = aerospike_server.stats["get"]
    assert client.get("/get/name", expect_errors=True).status_int == 503
    assert probed > reached
    assert aerospike_server.stats["get"] == probed

    aerospike_server.fail_next(0, 0)
    clock.advance(0.2)
    assert body_json(client.get("/get/name")) == "ada"
    assert not fast_store.breaker.open


@pytest.mark.parametrize("policy", ["raise", "degrade"])
def test_sessions_come_back_without_restarting_the_process(
    make_app: Any, aerospike_server: AerospikeServer, policy: str
) -> None:
    store = AerospikeStore(
        set=SET, hosts=aerospike_server.hosts, policies=POLICIES, breaker_cooldown=0.2
    )
    client = make_app(store=store, on_store_error=policy)
    client.get("/set/name?value=ada")
    aerospike_server.stop()
    for _ in range(6):
        client.get("/get/name", expect_errors=True)
    assert store.breaker.open

    aerospike_server.start()

    def served() -> bool:
        response = client.get("/get/name", expect_errors=True)
        return response.status_int == 200 and body_json(response) == "ada"

    assert poll(served)
    assert not store.breaker.open
    store.close()


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"on_store_error": "ignore"}, ValueError, "on_store_error"),
        ({"retry_after": -5}, ValueError, "retry_after"),
        ({"retry_after": "soon"}, ValueError, "retry_after"),
        ({"retry_after": 1.5}, ValueError, "retry_after"),
    ],
)
def test_bad_failure_options_of_the_middleware(
    store: AerospikeStore, options: dict[str, Any], error: type, named: str
) -> None:
    with pytest.raises(error, match=named):
        SessionMiddleware(session_app, store, SECRET, **options)


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"breaker_threshold": -1}, ValueError, "breaker_threshold"),
        ({"breaker_threshold": "5"}, ValueError, "breaker_threshold"),
        ({"breaker_threshold": 2.5}, ValueError, "breaker_threshold"),
        ({"breaker_cooldown": -1.0}, ValueError, "breaker_cooldown"),
        ({"breaker_cooldown": "5s"}, ValueError, "breaker_cooldown"),
        ({"metrics_hook": "statsd"}, TypeError, "metrics_hook"),
    ],
)
def test_bad_failure_options_of_the_store(
    options: dict[str, Any], error: type, named: str
) -> None:
    with pytest.raises(error, match=named):
        AerospikeStore(client=object(), **options)


@pytest.mark.parametrize("path", ["/invalidate", "/regenerate"])
def test_degraded_session_can_be_neither_ended_nor_moved(
    visit: Any, aerospike_server: AerospikeServer, path: str
) -> None:
    # Ending it would drop the cookie of a record that lives on; moving it
    # would give the user a new, empty session in place of the stored one.
    client = visit("degrade")
    client.get("/set/name?value=ada")
    cookie = client.cookies["session"]
    aerospike_server.stop()

    with pytest.raises(SessionUnavailableError):
        client.get(path)

    assert client.cookies["session"] == cookie
    assert stored(aerospike_server, client) == {"name": "ada"}


@pytest.mark.parametrize("code", [9, 8], ids=["timeout", "full"])
@pytest.mark.parametrize(
    ("policy", "status", "logged_level"),
    [("raise", 503, logging.ERROR), ("degrade", 200, logging.WARNING)],
)
def test_a_failed_extension_of_a_rolling_session(
    visit: Any,
    aerospike_server: AerospikeServer,
    caplog: pytest.LogCaptureFixture,
    policy: str,
    status: int,
    logged_level: int,
    code: int,
) -> None:
    client = visit(policy, rolling=True, rolling_interval=0, max_age=600)
    client.get("/set/name?value=ada")
    aerospike_server.fail_next(1, code, commands="write")

    response = client.get("/get/name", expect_errors=True)

    assert response.status_int == status
    assert "Set-Cookie" not in response.headers
    [logged] = package_records(caplog)
    assert logged.levelno == logged_level
    assert stored(aerospike_server, client) == {"name": "ada"}
