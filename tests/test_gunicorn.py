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
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from aerospike_wsgi_session import AerospikeStore
from aerospike_wsgi_session.testing.plugin import Hosts
from aerospike_wsgi_session.truncate import truncate

from .deployment import INI, Backend, edited_ini, probed_ini
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


@pytest.fixture(scope="module")
def module_set(aerospike_client: Any, aerospike_namespace: str) -> Iterator[str]:
    """A set for the sessions of this module's servers, emptied afterwards."""
    name = f"g{uuid.uuid4().hex[:20]}"
    yield name
    truncate(aerospike_client, aerospike_namespace, name)


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


def test_the_readme_gunicorn_recipe_serves_sessions(
    tmp_path: Path, aerospike_hosts: Hosts, aerospike_namespace: str, aerospike_set: str
) -> None:
    backend = Backend(aerospike_hosts, aerospike_namespace, aerospike_set)
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
