"""Concurrent requests of one session: nothing is lost, nothing comes back.

Every test sends real requests on threads through the middleware, all with
the cookie of one session. Where the order matters, a :class:`Gate` in the
application holds one request between its session work and its save (or
between loading and working) while another request runs from start to end.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import webob
import webob.dec
from webtest import TestApp

from aerospike_wsgi_session import AerospikeStore
from aerospike_wsgi_session.middleware import UNAVAILABLE_BODY
from aerospike_wsgi_session.signing import Signer, new_session_id
from aerospike_wsgi_session.store import BUSY_ATTEMPTS
from aerospike_wsgi_session.testing import AerospikeServer
from aerospike_wsgi_session.testing.plugin import HOSTS_VARIABLE

from .helpers import SECRET, body_json, session_app, set_cookies

WAIT_SECONDS = 10
KEY_BUSY = 14
#: A client for hundreds of threads: one connection each (the client's
#: default stops at 100 per node and answers the rest "no more connections"),
#: and time enough for an in-process server on two shared cores.
ROOMY: dict[str, Any] = {
    "max_conns_per_node": 400,
    "policies": {
        name: {"socket_timeout": 5000, "total_timeout": 5000}
        for name in ("read", "write", "operate")
    },
}


@pytest.fixture
def server_store(aerospike_server: AerospikeServer) -> Iterator[AerospikeStore]:
    """The shared fixture's store, with connections for 200 writers at once."""
    store = AerospikeStore(set="sessions", hosts=aerospike_server.hosts, **ROOMY)
    yield store
    store.close()


class Gate:
    """Holds the requests that ask for it until the test opens it."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()

    def hold(self) -> None:
        """Say the gate was reached, and wait for it to open."""
        self.reached.set()
        if not self.opened.wait(WAIT_SECONDS):
            raise TimeoutError("the test never opened the gate")


def gated_app(gate: Gate) -> Callable[..., Any]:
    """:func:`session_app`, held at ``gate`` as ``?hold=`` asks.

    ``hold=before`` loads the session, then waits before doing the work;
    ``hold=after`` does the work, then waits before the middleware saves.
    """

    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        hold = request.GET.get("hold")
        if hold == "before":
            len(request.environ["aerospike.session"])
            gate.hold()
        response = request.get_response(session_app)
        if hold == "after":
            gate.hold()
        return response

    return app


def race(gate: Gate, held: Callable[[], Any], other: Callable[[], Any]) -> Any:
    """Run ``held`` up to ``gate``, ``other`` to its end, then the rest of ``held``.

    :returns: the responses of ``held`` and ``other``.
    """
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(held)
        assert gate.reached.wait(WAIT_SECONDS), "the held request never held"
        try:
            second = other()
        finally:
            gate.opened.set()
        return pending.result(WAIT_SECONDS), second


def browser(client: TestApp, cookie: str | None = None) -> TestApp:
    """Another browser on the same application, holding ``cookie`` if given."""
    agent = TestApp(client.app)
    if cookie is not None:
        agent.set_cookie("session", cookie)
    return agent


def start_session(client: TestApp, **values: str) -> str:
    """Store ``values`` in a new session of ``client``; return its cookie."""
    for key, value in values.items():
        client.get(f"/set/{key}", params={"value": value})
    return str(client.cookies["session"])


def duel(
    app: TestApp, gate: Gate, values: dict[str, str], held: str, *others: str
) -> tuple[str, Any, Any]:
    """Race two browsers of a session holding ``values``.

    One asks for ``held``, which stops at ``gate``; meanwhile the other asks
    for each of ``others`` in turn.

    :returns: the session's cookie, the held response and the other's last.
    """
    cookie = start_session(app, **values)
    slow, fast = browser(app, cookie), browser(app, cookie)
    late, last = race(
        gate, lambda: slow.get(held), lambda: [fast.get(path) for path in others][-1]
    )
    return cookie, late, last


def seen(client: TestApp, cookie: str) -> dict[str, Any]:
    """The session a browser holding ``cookie`` finds."""
    agent = browser(client, cookie)
    keys = body_json(agent.get("/keys"))
    return {key: body_json(agent.get(f"/get/{key}")) for key in keys}


def stored(store: AerospikeStore, cookie: str) -> dict[str, Any] | None:
    """The record data behind a cookie value; ``None`` when there is none."""
    signer = Signer(SECRET)
    verified = signer.unsign(cookie)
    record = None if verified is None else store.load(signer.record_key(verified[0]))
    return None if record is None else record.data


def hammer_each(
    client: TestApp, cookie: str, threads: int, repeat: int, path: Callable[[int], str]
) -> list[list[Any]]:
    """Start ``threads`` browsers at once; each asks for ``path(i)`` ``repeat`` times.

    :returns: the responses of each browser, in the order of ``i``.
    """
    barrier = threading.Barrier(threads, timeout=WAIT_SECONDS)

    def run(number: int) -> list[Any]:
        agent = browser(client, cookie)
        barrier.wait()
        return [agent.get(path(number), expect_errors=True) for _ in range(repeat)]

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))


def hammer(
    client: TestApp, cookie: str, threads: int, repeat: int, path: Callable[[int], str]
) -> Counter[int]:
    """:func:`hammer_each`, counting how many responses had each status."""
    answers = hammer_each(client, cookie, threads, repeat, path)
    return Counter(response.status_int for own in answers for response in own)


def refusals(answers: list[list[Any]]) -> set[tuple[int, str | None]]:
    """The status and ``Retry-After`` of each kind of response other than 200."""
    return {
        (response.status_int, response.headers.get("Retry-After"))
        for own in answers
        for response in own
        if response.status_int != 200
    }


def allowed_refusals(retry_after: int) -> set[tuple[int, str | None]]:
    """The refusals a hot session may meet, as status and ``Retry-After``.

    A real cluster may answer "key busy" past the store's bound, which the
    user sees as the documented 503; the embedded server never does unless a
    test tells it to.
    """
    on_real_cluster = bool(os.environ.get(HOSTS_VARIABLE, "").strip())
    return {(503, str(retry_after))} if on_real_cluster else set()


def data_commands(server: AerospikeServer) -> dict[str, int]:
    """The data commands the embedded server answered, by kind."""
    return {kind: n for kind, n in server.stats.items() if kind != "info"}


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def gated(make_app: Any, gate: Gate) -> TestApp:
    return make_app(gated_app(gate))


@pytest.fixture
def roomy_store(
    aerospike_connect: Any, aerospike_namespace: str, aerospike_set: str
) -> AerospikeStore:
    """A store on the shared backend whose client is sized for many threads."""
    client = aerospike_connect(**ROOMY)
    return AerospikeStore(
        namespace=aerospike_namespace, set=aerospike_set, client=client
    )


# Disjoint keys: nothing to retry, nothing lost.


def test_fifty_threads_on_their_own_keys_lose_no_increment(
    client: TestApp, store: AerospikeStore
) -> None:
    cookie = start_session(client, owner="ada")

    statuses = hammer(client, cookie, 50, 100, lambda n: f"/incr/k{n}")

    assert statuses == {200: 5000}
    expected = {"owner": "ada", **{f"k{n}": 100 for n in range(50)}}
    assert stored(store, cookie) == expected


# One key, two requests: the last save wins that key and only that key.


def test_last_save_wins_its_key_and_leaves_the_others_alone(
    gated: TestApp, gate: Gate, store: AerospikeStore
) -> None:
    cookie, _, _ = duel(
        gated,
        gate,
        {"color": "red", "size": "s"},
        "/set/color?value=blue&hold=after",
        "/set/color?value=green",
        "/set/size?value=m",
    )

    assert stored(store, cookie) == {"color": "blue", "size": "m"}


@pytest.mark.parametrize(
    ("slow_path", "expected"),
    [
        ("/set/color?value=blue&hold=after", {"color": "blue", "tags": ["a"]}),
        ("/get/cart?hold=after", {"color": "red", "tags": ["a"]}),
        ("/append/tags?value=x&hold=after", {"color": "red", "tags": ["a", "x"]}),
    ],
    ids=["sets-another-key", "reads-the-deleted-list", "edits-another-list"],
)
def test_a_deleted_key_stays_deleted_after_a_concurrent_save(
    gated: TestApp,
    gate: Gate,
    store: AerospikeStore,
    slow_path: str,
    expected: dict[str, Any],
) -> None:
    gated.get("/append/cart?value=apple")
    gated.get("/append/tags?value=a")
    cookie, _, _ = duel(gated, gate, {"color": "red"}, slow_path, "/delete/cart")

    assert stored(store, cookie) == expected


def test_setting_back_the_loaded_value_wins_when_saved_last(
    gated: TestApp, gate: Gate, store: AerospikeStore
) -> None:
    cookie, _, _ = duel(
        gated,
        gate,
        {"role": "user"},
        "/set/role?value=user&hold=after",
        "/set/role?value=admin",
    )

    assert stored(store, cookie) == {"role": "user"}


# Logout wins: an ended session is never written again.


@pytest.mark.parametrize(
    ("ending", "left"),
    [("/invalidate", None), ("/regenerate", {"user": "ada"})],
    ids=["invalidate", "regenerate"],
)
def test_a_save_after_the_session_ended_brings_nothing_back(
    gated: TestApp,
    gate: Gate,
    store: AerospikeStore,
    ending: str,
    left: dict[str, str] | None,
) -> None:
    cookie, late, ended = duel(
        gated, gate, {"user": "ada"}, "/set/cart?value=apple&hold=after", ending
    )

    assert stored(store, cookie) is None
    assert "session" not in set_cookies(late)
    assert seen(gated, cookie) == {}
    assert stored(store, set_cookies(ended)["session"].value) == left


def test_a_rolling_touch_after_logout_brings_nothing_back(
    make_app: Any, gate: Gate, store: AerospikeStore
) -> None:
    rolling = make_app(gated_app(gate), rolling=True, rolling_interval=0, max_age=600)
    cookie, late, _ = duel(
        rolling, gate, {"user": "ada"}, "/get/user?hold=after", "/invalidate"
    )

    assert body_json(late) == "ada"
    assert "session" not in set_cookies(late)
    assert stored(store, cookie) is None


def test_a_login_racing_a_logout_does_not_revive_the_session(
    gated: TestApp, gate: Gate, store: AerospikeStore
) -> None:
    cookie, late, _ = duel(
        gated, gate, {"user": "ada"}, "/regenerate?hold=before", "/invalidate"
    )

    assert stored(store, cookie) is None
    assert set_cookies(late)["session"].value == ""


def test_a_regenerate_keeps_what_a_concurrent_request_saved(
    gated: TestApp, gate: Gate, store: AerospikeStore
) -> None:
    _, late, _ = duel(
        gated, gate, {"user": "ada"}, "/regenerate?hold=before", "/set/cart?value=apple"
    )

    moved = set_cookies(late)["session"].value
    assert stored(store, moved) == {"user": "ada", "cart": "apple"}


# Unique ids: a new session never takes over an existing record.


def repeating_generator(taken: str, times: int) -> Callable[[], str]:
    """An id generator that answers ``taken`` ``times`` times, then fresh ids."""
    lock = threading.Lock()
    answers = [taken] * times

    def generate() -> str:
        with lock:
            return answers.pop() if answers else new_session_id()

    return generate


def test_a_taken_id_is_refused_by_the_server_and_another_drawn(
    make_app: Any, store: AerospikeStore
) -> None:
    taken = new_session_id()
    app = make_app(id_generator=repeating_generator(taken, 2))
    owner = start_session(app, name="ada")

    intruder = browser(app)
    intruder.get("/set/name?value=mallory")

    assert owner.startswith(taken)
    assert not intruder.cookies["session"].startswith(taken)
    assert stored(store, owner) == {"name": "ada"}
    assert stored(store, intruder.cookies["session"]) == {"name": "mallory"}
    assert store.metrics.snapshot()["conflicts"] == 1


def test_two_new_sessions_drawing_one_id_at_once_both_get_their_own(
    make_app: Any, store: AerospikeStore
) -> None:
    barrier = threading.Barrier(2, timeout=WAIT_SECONDS)

    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        request.environ["aerospike.session"]["name"] = request.GET["name"]
        barrier.wait()
        return webob.Response("ok")

    shared = make_app(app, id_generator=repeating_generator(new_session_id(), 2))
    with ThreadPoolExecutor(2) as pool:
        names = ["ada", "bob"]
        responses = list(pool.map(lambda n: browser(shared).get(f"/?name={n}"), names))

    cookies = [set_cookies(response)["session"].value for response in responses]
    assert cookies[0].split(".")[0] != cookies[1].split(".")[0]
    assert [stored(store, cookie) for cookie in cookies] == [
        {"name": "ada"},
        {"name": "bob"},
    ]
    assert store.metrics.snapshot()["conflicts"] == 1


# Bounded: a hot session finishes, with no lost update and no hang.


def test_two_hundred_writers_on_one_session_finish_without_loss(
    make_app: Any, roomy_store: AerospikeStore
) -> None:
    app = make_app(store=roomy_store, retry_after=3)
    cookie = start_session(app, owner="ada")

    answers = hammer_each(app, cookie, 200, 3, lambda n: f"/incr/k{n}")

    saved = [sum(response.status_int == 200 for response in own) for own in answers]
    errors = {k for k in roomy_store.metrics.snapshot() if k.startswith("errors.")}
    assert sum(saved) > 0
    assert refusals(answers) <= allowed_refusals(retry_after=3)
    assert errors <= {"errors.busy"}
    # A refused increment wrote nothing: each key holds its browser's 200s.
    expected = {f"k{n}": count for n, count in enumerate(saved) if count}
    assert stored(roomy_store, cookie) == {"owner": "ada", **expected}


@pytest.mark.parametrize(
    ("busy", "status", "color"),
    [(BUSY_ATTEMPTS - 1, 200, "blue"), (BUSY_ATTEMPTS, 503, "red")],
    ids=["within-the-bound", "past-the-bound"],
)
def test_busy_answers_are_retried_up_to_the_bound(
    make_app: Any,
    server_store: AerospikeStore,
    aerospike_server: AerospikeServer,
    busy: int,
    status: int,
    color: str,
) -> None:
    app = make_app(store=server_store)
    cookie = start_session(app, color="red")
    aerospike_server.fail_next(busy, KEY_BUSY, commands="write")

    response = app.get("/set/color?value=blue", expect_errors=True)

    assert response.status_int == status
    assert server_store.metrics.snapshot()["retries"] == BUSY_ATTEMPTS - 1
    assert stored(server_store, cookie) == {"color": color}
    assert body_json(app.get("/get/color")) == color


def test_past_the_bound_the_user_gets_a_503_to_retry(
    make_app: Any, server_store: AerospikeStore, aerospike_server: AerospikeServer
) -> None:
    app = make_app(store=server_store, retry_after=3)
    start_session(app, color="red")
    aerospike_server.fail_next(BUSY_ATTEMPTS, KEY_BUSY, commands="write")

    response = app.get("/set/color?value=blue", status=503)

    assert response.body == UNAVAILABLE_BODY
    assert response.headers["Retry-After"] == "3"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


def test_busy_answers_among_two_hundred_writers_lose_nothing(
    make_app: Any, server_store: AerospikeStore, aerospike_server: AerospikeServer
) -> None:
    app = make_app(store=server_store)
    cookie = start_session(app, owner="ada")
    aerospike_server.fail_next(BUSY_ATTEMPTS - 1, KEY_BUSY, commands="write")

    statuses = hammer(app, cookie, 200, 3, lambda n: f"/incr/k{n}")

    assert statuses == {200: 600}
    assert server_store.metrics.snapshot()["retries"] == BUSY_ATTEMPTS - 1
    expected = {"owner": "ada", **{f"k{n}": 3 for n in range(200)}}
    assert stored(server_store, cookie) == expected


# Cost: without contention a save is one round trip.


def test_each_changed_request_costs_one_read_and_one_write(
    make_app: Any, server_store: AerospikeStore, aerospike_server: AerospikeServer
) -> None:
    app = make_app(store=server_store)
    cookie = start_session(app, owner="ada")
    aerospike_server.stats.clear()

    statuses = hammer(app, cookie, 50, 1, lambda n: f"/set/k{n}?value={n}")

    assert statuses == {200: 50}
    assert data_commands(aerospike_server) == {"get": 50, "operate": 50}
