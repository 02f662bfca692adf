"""The middleware under real gunicorn processes, and the fork safety they need.

The test ini (tests/data/session.ini) is served by ``gunicorn --paste``, with
sync and gthread workers, with and without ``--preload``; the workers use the
test session's Aerospike backend (the embedded server in this process, or the
cluster of ``AEROSPIKE_HOSTS``). The ini sets ``check_at_startup``, so with
``--preload`` the master connects before it forks. A probe in front of the
session filter answers ``/client``: which process made the client a worker
uses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aerospike_wsgi_session import AerospikeStore
from aerospike_wsgi_session.testing.plugin import HOSTS_VARIABLE, Hosts
from aerospike_wsgi_session.truncate import truncate

from .deployment import INI, Backend, edited_ini, ini_signer, probed_ini
from .gunicorn_helpers import Browser, Gunicorn, GunicornError, Reply, serve
from .helpers import OLD_SECRET, SECRET
from .readme_blocks import write_example

WORKERS = 3
SYNC = ["--worker-class", "sync"]
GTHREAD = ["--worker-class", "gthread", "--threads", "4"]
CONFIGURATIONS = {
    "sync": SYNC,
    "gthread": GTHREAD,
    "sync-preload": [*SYNC, "--preload"],
    "gthread-preload": [*GTHREAD, "--preload"],
}

#: How gunicorn logs a worker killed by a crash, not by its stop signal.
CRASHED = re.compile(r"was sent SIG(SEGV|ABRT|BUS|ILL|FPE)")

#: Requests sent until a second worker answered; far more than ever needed.
SPREAD_ATTEMPTS = 200

#: Clients of one session at once in a concurrency run, and the requests
#: each sends before another request cuts in, and again after it answered.
CLIENTS = 6
ROUNDS = 10
#: The most requests one client sends in a run, if the cut-in never answers.
MOST_TURNS = 400
WAIT_SECONDS = 30


@pytest.fixture(scope="module")
def module_set(aerospike_client: Any, aerospike_namespace: str) -> Iterator[str]:
    """A set for the sessions of this module's servers, emptied afterwards."""
    name = f"g{uuid.uuid4().hex[:20]}"
    yield name
    truncate(aerospike_client, aerospike_namespace, name)


@pytest.fixture(scope="module")
def module_store(
    aerospike_client: Any, aerospike_namespace: str, module_set: str
) -> AerospikeStore:
    """A store on the set the module's servers keep their sessions in."""
    return AerospikeStore(
        namespace=aerospike_namespace, set=module_set, client=aerospike_client
    )


def paste_args(
    hosts: Hosts, namespace: str, set_name: str, ini: Path = INI
) -> list[str]:
    """gunicorn's arguments that serve the test ini on the test backend."""
    args = ["--paste", str(ini), "--graceful-timeout", "3", "--timeout", "30"]
    for name, value in Backend(hosts, namespace, set_name).global_conf().items():
        args += ["--paste-global", f"{name}={value}"]
    return args


@pytest.fixture(scope="module", params=list(CONFIGURATIONS))
def gunicorn(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    aerospike_hosts: Hosts,
    aerospike_namespace: str,
    module_set: str,
) -> Iterator[Gunicorn]:
    """The test ini, with the client probe, under gunicorn in each configuration."""
    directory = tmp_path_factory.mktemp("gunicorn")
    ini = probed_ini(directory)
    args = paste_args(aerospike_hosts, aerospike_namespace, module_set, ini)
    log = directory / f"{request.param}.log"
    with serve([*args, *CONFIGURATIONS[request.param]], log, workers=WORKERS) as server:
        yield server
    # A worker that crashed (one freeing a client it inherited) is logged so.
    assert not CRASHED.search(server.log_text())


def logged_in(server: Gunicorn, user: str = "ada") -> Browser:
    browser = Browser(server.port)
    assert browser.post("/login", {"user": user}).status == 200
    return browser


def answer(reply: Any) -> Any:
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def until_two_workers(send: Callable[[], Reply]) -> list[Reply]:
    """The replies of ``send()``, called until a second worker answered.

    Gives up after :data:`SPREAD_ATTEMPTS` calls.
    """
    replies = [send()]
    while len({r.worker for r in replies}) < 2 and len(replies) < SPREAD_ATTEMPTS:
        replies.append(send())
    return replies


def test_a_login_is_read_back_at_once(gunicorn: Gunicorn) -> None:
    browser = logged_in(gunicorn)

    assert set(browser.cookies) == {"sid"}
    assert answer(browser.get("/whoami")) == {"user": "ada"}


def test_each_post_is_read_back_by_the_next_get(gunicorn: Gunicorn) -> None:
    browser = logged_in(gunicorn)

    seen = []
    for _ in range(10):
        browser.post("/incr/clicks")
        seen.append(answer(browser.get("/counts"))["clicks"])

    assert seen == list(range(1, 11))


def test_a_session_is_shared_by_the_workers(gunicorn: Gunicorn) -> None:
    browser = logged_in(gunicorn)

    replies = until_two_workers(lambda: browser.post("/incr/visits"))

    visits = [answer(reply)["visits"] for reply in replies]
    assert len({reply.worker for reply in replies}) == 2
    assert visits == list(range(1, len(replies) + 1))
    assert answer(browser.get("/whoami")) == {"user": "ada"}


def test_each_worker_uses_a_client_made_in_its_own_process(
    gunicorn: Gunicorn,
) -> None:
    browser = logged_in(gunicorn)

    probes = [answer(r) for r in until_two_workers(lambda: browser.get("/client"))]

    workers = [probe["pid"] for probe in probes]
    assert len(set(workers)) == 2
    assert [probe["client_made_in"] for probe in probes] == workers
    loaded_before_the_fork = {probe["loaded_in"] != probe["pid"] for probe in probes}
    assert loaded_before_the_fork == {gunicorn.preloaded}


def test_counters_of_many_sessions_stay_exact(gunicorn: Gunicorn) -> None:
    def count_to_ten(user: str) -> dict[str, int]:
        browser = logged_in(gunicorn, user)
        for _ in range(10):
            browser.post(f"/incr/{user}")
        return dict(answer(browser.get("/counts")))

    users = [f"user{number}" for number in range(6)]
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        counts = list(pool.map(count_to_ten, users))

    assert counts == [{user: 10} for user in users]


# Forks after the store's client connected, as gunicorn --preload does when the
# app checks the store at load time. The child exits normally, so the
# interpreter's shutdown runs too; it prints the child's exit code and pid.
FORK_SCRIPT = """
import os, sys
from aerospike_wsgi_session import AerospikeStore

store = AerospikeStore(namespace=sys.argv[2], set=sys.argv[3], hosts=sys.argv[1])
parent_client = store.client
pid = os.fork()
if pid == 0:
    own_client = store.client is not parent_client
    store.client.put(store.key("child"), {"pid": os.getpid()})
    sys.exit(0 if own_client else 3)
_, status = os.waitpid(pid, 0)
parent_client.put(store.key("parent"), {"pid": os.getpid()})
print(os.waitstatus_to_exitcode(status), pid)
"""


def test_a_forked_child_makes_its_own_client(
    aerospike_hosts: Hosts,
    aerospike_namespace: str,
    aerospike_set: str,
    aerospike_client: Any,
) -> None:
    hosts = " ".join(f"{host}:{port}" for host, port in aerospike_hosts)
    command = [sys.executable, "-c", FORK_SCRIPT, hosts, aerospike_namespace]
    ran = subprocess.run(
        [*command, aerospike_set], capture_output=True, text=True, timeout=60
    )

    exit_code, child = ran.stdout.split()
    assert (ran.returncode, exit_code) == (0, "0"), ran.stderr
    _, _, bins = aerospike_client.get((aerospike_namespace, aerospike_set, "child"))
    assert bins == {"pid": int(child)}


def test_concurrent_requests_of_one_session_keep_every_change(
    gunicorn: Gunicorn,
) -> None:
    cookies = logged_in(gunicorn).cookies
    keys = [f"key{number}" for number in range(8)]

    def count_own_key(key: str) -> list[Reply]:
        browser = Browser(gunicorn.port, dict(cookies))
        return [browser.post(f"/incr/{key}") for _ in range(10)]

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        replies = dict(zip(keys, pool.map(count_own_key, keys), strict=True))

    counts = [[answer(reply)[key] for reply in replies[key]] for key in keys]
    workers = {reply.worker for own in replies.values() for reply in own}
    assert counts == [list(range(1, 11))] * len(keys)
    assert len(workers) > 1
    final = answer(Browser(gunicorn.port, dict(cookies)).get("/counts"))
    assert final == dict.fromkeys(keys, 10)


# The concurrency rules across processes: each client of a run keeps one
# connection alive (the sync workers close it after every response), so the
# requests of one session meet in different workers at once.


@dataclass
class Run:
    """What the clients of one session got, and the request that cut in.

    ``before`` holds, per client, the replies to requests sent before the
    cut-in request had answered; ``after``, those sent once it had.
    """

    before: list[list[Reply]]
    after: list[list[Reply]]
    cut_in: Reply | None

    @property
    def replies(self) -> list[list[Reply]]:
        """Each client's replies, in the order it sent the requests."""
        return [own + later for own, later in zip(self.before, self.after, strict=True)]

    @property
    def workers(self) -> set[int]:
        return {reply.worker for own in self.replies for reply in own}

    @property
    def statuses(self) -> set[int]:
        return {reply.status for own in self.replies for reply in own}

    def own_counts(self) -> dict[str, int]:
        """Each client's own key, with the number of its requests answered 200."""
        saved = [sum(reply.status == 200 for reply in own) for own in self.replies]
        return {own_key(client): count for client, count in enumerate(saved) if count}


def own_key(client: int) -> str:
    return f"own{client}"


def increment_own_key(browser: Browser, client: int, turn: int) -> Reply:
    return browser.post(f"/incr/{own_key(client)}")


def spread_browsers(server: Gunicorn, cookies: dict[str, str]) -> list[Browser]:
    """:data:`CLIENTS` keep-alive browsers, their connections spread over workers.

    A gthread worker keeps answering the connection it accepted, and one idle
    worker may accept every connection opened at once. So the browsers
    connect one by one, each pinging on a new connection until a worker
    with fewer than its share answers, at most :data:`SPREAD_ATTEMPTS` times.
    """
    share = -(-CLIENTS // WORKERS)
    held: Counter[int] = Counter()
    browsers = []
    for _ in range(CLIENTS):
        browser = Browser(server.port, dict(cookies), keep_alive=True)
        for _ in range(SPREAD_ATTEMPTS):
            worker = browser.get("/ping").worker
            if held[worker] < share:
                break
            browser.close()
        held[worker] += 1
        browsers.append(browser)
    return browsers


def crowd(
    server: Gunicorn,
    cookies: dict[str, str],
    send: Callable[[Browser, int, int], Reply],
    cut_in: Callable[[Browser], Reply] | None = None,
) -> Run:
    """:data:`CLIENTS` clients of one session, sending at once.

    Each client calls ``send(browser, client, turn)`` over its own keep-alive
    connection (see :func:`spread_browsers`), :data:`ROUNDS` times. Once they
    all have, ``cut_in`` is sent from another browser with the same cookies
    while they go on; each client stops :data:`ROUNDS` requests after it
    answered (or after :data:`MOST_TURNS` in all).
    """
    browsers = spread_browsers(server, cookies)
    started = threading.Barrier(CLIENTS, timeout=WAIT_SECONDS)
    warmed_up = threading.Semaphore(0)
    answered = threading.Event()

    def client(number: int) -> tuple[list[Reply], list[Reply]]:
        before: list[Reply] = []
        after: list[Reply] = []
        with browsers[number] as browser:
            started.wait()
            for turn in range(MOST_TURNS):
                late = answered.is_set()
                (after if late else before).append(send(browser, number, turn))
                if turn + 1 == ROUNDS:
                    warmed_up.release()
                if len(after) == ROUNDS:
                    break
        return before, after

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client, number) for number in range(CLIENTS)]
        ready = all(warmed_up.acquire(timeout=WAIT_SECONDS) for _ in futures)
        try:
            reply = cut_in(Browser(server.port, dict(cookies))) if cut_in else None
        finally:
            answered.set()
        before, after = zip(*(future.result() for future in futures), strict=True)

    assert ready, "the clients never sent their first rounds"
    return Run(list(before), list(after), reply)


def allowed_statuses() -> set[int]:
    """200, and on a real cluster the 503 of a record that stayed busy."""
    on_a_cluster = bool(os.environ.get(HOSTS_VARIABLE, "").strip())
    return {200, 503} if on_a_cluster else {200}


def session_id(cookie_value: str) -> str | None:
    """The session id a cookie value of the test ini carries."""
    verified = ini_signer().unsign(cookie_value)
    return None if verified is None else verified[0]


def record_key(cookie_value: str) -> str:
    """The key of the record behind a cookie value of the test ini."""
    signer = ini_signer()
    verified = signer.unsign(cookie_value)
    assert verified is not None, "the cookie is not signed with the ini's secret"
    return signer.record_key(verified[0])


def stored(store: AerospikeStore, cookie_value: str) -> dict[str, Any] | None:
    """The session data behind a cookie value; ``None`` when there is none."""
    record = store.load(record_key(cookie_value))
    return None if record is None else record.data


def record_exists(store: AerospikeStore, cookie_value: str) -> bool:
    """Whether any record is behind a cookie value, even one the store refuses."""
    _, meta = store.client.exists(store.key(record_key(cookie_value)))
    return meta is not None


def test_concurrent_writes_of_one_key_keep_the_last_and_every_own_count(
    gunicorn: Gunicorn, module_store: AerospikeStore
) -> None:
    cookies = logged_in(gunicorn).cookies

    def set_shared_and_count(browser: Browser, client: int, turn: int) -> Reply:
        form = {"shared": f"{client}-{turn}"}
        return browser.post(f"/incr/{own_key(client)}", form)

    run = crowd(gunicorn, cookies, set_shared_and_count)

    record = stored(module_store, cookies["sid"])
    assert record is not None
    # Each client waits for an answer before it sends again, so the save
    # that came last is the last one some client got a 200 for.
    saved_turns = [
        [turn for turn, reply in enumerate(own) if reply.status == 200]
        for own in run.replies
    ]
    last_saved = {f"{n}-{turns[-1]}" for n, turns in enumerate(saved_turns) if turns}
    assert record.pop("shared") in last_saved
    assert record == {"user": "ada", **run.own_counts()}
    assert run.statuses <= allowed_statuses()
    assert len(run.workers) > 1


def test_a_key_deleted_among_concurrent_writes_stays_deleted(
    gunicorn: Gunicorn, module_store: AerospikeStore
) -> None:
    browser = logged_in(gunicorn)
    browser.post("/incr/cart")

    run = crowd(
        gunicorn, browser.cookies, increment_own_key, lambda b: b.post("/delete/cart")
    )

    assert run.cut_in is not None and answer(run.cut_in) == {"cart": 1}
    expected = {"user": "ada", **run.own_counts()}
    assert stored(module_store, browser.cookies["sid"]) == expected
    assert run.statuses <= allowed_statuses()
    assert len(run.workers) > 1


def test_a_logout_among_concurrent_writes_ends_the_session_for_good(
    gunicorn: Gunicorn, module_store: AerospikeStore
) -> None:
    cookies = logged_in(gunicorn).cookies
    old_id = session_id(cookies["sid"])

    run = crowd(gunicorn, cookies, increment_own_key, lambda b: b.post("/logout"))

    assert run.cut_in is not None and answer(run.cut_in) == {"user": None}
    assert run.cut_in.set_cookies()["sid"].value == ""
    assert not record_exists(module_store, cookies["sid"])
    assert answer(Browser(gunicorn.port, dict(cookies)).get("/counts")) == {}
    later_ids = {
        session_id(reply.set_cookies()["sid"].value)
        for own in run.after
        for reply in own
        if "sid" in reply.set_cookies()
    }
    # Every client, sent away from the ended session, started one of its own.
    assert len(later_ids) == CLIENTS
    assert old_id not in later_ids
    assert run.statuses <= allowed_statuses()
    assert len(run.workers) > 1


def test_the_readme_gunicorn_recipe_serves_sessions(
    tmp_path: Path, backend: Backend
) -> None:
    write_example(tmp_path, "# myapp.py", backend)
    conf = write_example(tmp_path, "# gunicorn.conf.py")
    env = {"SESSION_SECRET": f"{SECRET} {OLD_SECRET}"}

    log = tmp_path / "gunicorn.log"
    with serve(["-c", str(conf)], log, workers=2, env=env, chdir=tmp_path) as server:
        browser = Browser(server.port)
        pages = [browser.get("/").body for _ in range(3)]

    assert pages == [f"visit number {n}\n".encode() for n in (1, 2, 3)]


@pytest.mark.parametrize("preload", [[], ["--preload"]], ids=["workers", "preload"])
def test_a_bad_option_stops_gunicorn_at_startup(
    tmp_path: Path,
    aerospike_hosts: Hosts,
    aerospike_namespace: str,
    aerospike_set: str,
    preload: list[str],
) -> None:
    ini = edited_ini(tmp_path, "idle_timeout = 30m", "idle_timeout = soon")
    args = paste_args(aerospike_hosts, aerospike_namespace, aerospike_set, ini)

    with (
        pytest.raises(GunicornError, match="idle_timeout must be seconds"),
        serve([*args, *preload], tmp_path / "gunicorn.log"),
    ):
        pass


def test_workers_checking_the_store_at_once_all_pass(
    aerospike_hosts: Hosts, aerospike_namespace: str, aerospike_set: str
) -> None:
    # What workers started without --preload do, each with its own client.
    stores = [
        AerospikeStore(
            namespace=aerospike_namespace, set=aerospike_set, hosts=aerospike_hosts
        )
        for _ in range(6)
    ]

    def check_often(store: AerospikeStore) -> int:
        return sum(1 for _ in range(10) if store.check(3600) is not None)

    with ThreadPoolExecutor(max_workers=len(stores)) as pool:
        passed = list(pool.map(check_often, stores))
    for store in stores:
        store.close()

    assert passed == [10] * len(stores)
