"""Benchmarks of the middleware against the bare app, the store floor and Beaker.

Run: ``python benchmarks/run.py`` (about six minutes), ``--smoke`` (a few
hundred requests per system, in process, well under a minute), ``--profile``
(adds a profile of the middleware's ``read`` and ``write``), ``--no-http``.

The Aerospike backend is an embedded server started in a process of its own,
or the cluster named by ``AEROSPIKE_HOSTS``. Beaker's Redis backend runs
against a ``redis-server`` started on a free loopback port (installed with
apt-get when missing and allowed). Every figure is the median of several
repetitions, the systems taking turns, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import http.client
import io
import json
import os
import platform
import pstats
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps

from aerospike_wsgi_session.store import parse_hosts

HERE = Path(__file__).resolve().parent
SCENARIOS = ("untouched", "read", "write", "new", "big")
FLOOR_OF = {"untouched": "bare app"}

EMBEDDED_SERVER = """
import sys
from aerospike_wsgi_session.testing import AerospikeServer
with AerospikeServer() as server:
    print(server.port, flush=True)
    sys.stdin.read()
"""


@dataclass
class Plan:
    """How much to run: requests per measurement and repetitions."""

    fast_requests: int
    requests: int
    reps: int
    growth_reps: int
    http_seconds: float
    http_reps: int


#: What one call takes on a real Aerospike 8.1 server over loopback, in µs:
#: the top of the range measured there for a get or a put of a small record.
REAL_SERVER_CALL_US = 21.0

FULL = Plan(20_000, 1_000, 5, 5, 3.0, 5)
SMOKE = Plan(300, 100, 1, 1, 0.0, 0)


# Services: the Aerospike backend, redis-server, the load generator.


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Backend:
    """The Aerospike backend: a client configuration, and its process if ours."""

    config: dict[str, Any]
    pid: int | None = None


@contextlib.contextmanager
def aerospike_backend() -> Iterator[Backend]:
    """The cluster of ``AEROSPIKE_HOSTS``, or an embedded server."""
    hosts = os.environ.get("AEROSPIKE_HOSTS")
    if hosts:
        print(f"backend: the cluster of AEROSPIKE_HOSTS ({len(parse_hosts(hosts))})")
        yield Backend({"hosts": parse_hosts(hosts)})
        return
    command = [sys.executable, "-c", EMBEDDED_SERVER]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        print(f"backend: embedded server, own process (pid {proc.pid})")
        yield Backend({"hosts": [("127.0.0.1", port)]}, proc.pid)
    finally:
        _stop(proc)


@contextlib.contextmanager
def pinned(pids: list[int | None]) -> Iterator[None]:
    """Run this process and the servers ``pids`` on one and the same core.

    Unpinned, a request to the embedded server takes either about 15 µs or
    about 90 µs, depending on whether the server's thread wakes on the
    caller's core or the other one, and that changes from one connection to
    the next: it would swamp the differences measured (redis-server shows
    the same). Requests in process are sequential, so sharing one core costs
    them nothing. A cluster of ``AEROSPIKE_HOSTS`` is left alone.
    """
    ours = [os.getpid(), *(pid for pid in pids if pid is not None)]
    if pids[0] is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    everything = os.sched_getaffinity(0)
    for pid in ours:
        _set_affinity(pid, {max(everything)})
    try:
        yield
    finally:
        for pid in ours:
            _set_affinity(pid, everything)


def _set_affinity(pid: int, cpus: set[int]) -> None:
    # Every thread of the process: the affinity of a pid is its main thread's.
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(tid), cpus)


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def find_tool(binary: str, package: str, install: bool) -> str | None:
    """The path of ``binary``, installing Debian's ``package`` if allowed."""
    found = shutil.which(binary)
    if found or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print(f"installing {package} with apt-get...")
    install_cmd = ["apt-get", "install", "-y", "-q", package]
    if _quietly(install_cmd):
        _quietly(["apt-get", "update", "-q"])
        _quietly(install_cmd)
    return shutil.which(binary)


def _quietly(command: list[str]) -> int:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    out = subprocess.DEVNULL
    return subprocess.run(command, env=env, stdout=out, stderr=out).returncode


@dataclass
class Redis:
    """A ``redis-server`` of ours: its URL and pid, or neither."""

    url: str | None = None
    pid: int | None = None


@contextlib.contextmanager
def no_redis(reason: str) -> Iterator[Redis]:
    """No ``redis-server``: say why the system ``beaker redis`` is left out."""
    print(f"beaker redis: skipped, {reason}")
    yield Redis()


@contextlib.contextmanager
def redis_backend(install: bool) -> Iterator[Redis]:
    """A fresh ``redis-server`` without persistence, if there can be one."""
    binary = find_tool("redis-server", "redis-server", install)
    if binary is None:
        print("beaker redis: skipped, redis-server is missing and cannot be installed")
        yield Redis()
        return
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--daemonize", "no"]
    proc = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL)
    try:
        _wait_for_port(port)
        yield Redis(f"redis://127.0.0.1:{port}/0", proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for_port(port: int, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port)),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {seconds:g} s")


# In process: calling the WSGI callable directly.


class Timing(NamedTuple):
    """Seconds per request: on the clock, and on the CPU of this thread.

    The CPU time leaves out the waits for the server (and whatever else
    the shared machine runs meanwhile): what the application, the
    middleware and the client library do in the request's own thread.
    """

    wall: float
    cpu: float


def time_requests(app: Any, environ: dict[str, Any], count: int) -> Timing:
    """Time ``count`` requests of one environ; return the time per request."""

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    started, cpu_started = time.perf_counter(), time.thread_time()
    for _ in range(count):
        body = app(dict(environ), start_response)
        for _chunk in body:
            pass
        if hasattr(body, "close"):
            body.close()
    wall = time.perf_counter() - started
    return Timing(wall / count, (time.thread_time() - cpu_started) / count)


def scenario_environ(scenario: str, cookies: dict[str, str]) -> dict[str, Any]:
    """The environ of one scenario's request."""
    if scenario == "new":
        return apps.environ_for("/new")
    cookie = cookies.get("big" if scenario == "big" else "small")
    return apps.environ_for(f"/{scenario}", cookie)


class SystemFailed(RuntimeError):
    """A system did not answer a scenario as it should: its figures would lie."""


def check_answer(system: apps.System, scenario: str, environ: dict[str, Any]) -> None:
    """Refuse to time a system that does not answer ``200`` to a scenario."""
    status, headers = apps.call(system.app, dict(environ))
    if not status.startswith("200"):
        raise SystemFailed(f"{system.name}, {scenario}: answered {status}")
    cookies = [name for name, _ in headers if name.lower() == "set-cookie"]
    if scenario == "new" and not cookies:
        raise SystemFailed(f"{system.name}, new: set no cookie")


def seed_cookies(system: apps.System) -> dict[str, str]:
    """Sessions for the scenarios that need one, as ``Cookie`` headers."""
    if system.name == "bare app":
        return {}
    return {
        "small": apps.seed(system.app, apps.small_session()),
        "big": apps.seed(system.app, apps.sized_session(50_000)),
    }


Times = dict[tuple[str, str], list[Timing]]


def in_process(systems: list[apps.System], plan: Plan) -> Times:
    """The timings of every system and scenario, one list per pair."""
    cookies = {system.name: seed_cookies(system) for system in systems}
    times: Times = {}
    for rep in range(plan.reps + 1):
        for scenario in SCENARIOS:
            count = plan.fast_requests if scenario == "untouched" else plan.requests
            turn = systems[rep % len(systems) :] + systems[: rep % len(systems)]
            for system in turn:
                if system.name == "bare app" and scenario != "untouched":
                    continue
                environ = scenario_environ(scenario, cookies[system.name])
                if not rep:
                    check_answer(system, scenario, environ)
                # The first round warms up and is not counted.
                took = time_requests(system.app, environ, count if rep else 50)
                if rep:
                    times.setdefault((system.name, scenario), []).append(took)
    return times


def growth(config: dict[str, Any], plan: Plan) -> None:
    """Print the time per request as the session grows, and as changes grow."""
    systems = [apps.middleware_system(config), apps.floor_system(config)]
    rows: list[tuple[int, str, str, tuple[float, float]]] = []
    for size in (1_000, 10_000, 100_000, 500_000):
        count = max(20, plan.requests * 1_000 // max(size, 5_000))
        data = apps.sized_session(size)
        cookies = {s.name: apps.seed(s.app, data) for s in systems}
        for path in ("/read", "/big"):
            row = _growth_row(systems, cookies, path, "", count, plan)
            rows.append((size // 1000, "KB", path, row))
    data = {f"c{i}": 0 for i in range(100)}
    cookies = {s.name: apps.seed(s.app, data) for s in systems}
    for keys in (1, 10, 100):
        query, count = f"keys={keys}", plan.requests // 2
        row = _growth_row(systems, cookies, "/change", query, count, plan)
        rows.append((keys, "keys", "/change", row))
    for system in systems:
        system.close()
    print_growth(rows)


def print_growth(rows: list[tuple[int, str, str, tuple[float, float]]]) -> None:
    """Print the growth table; ``step`` is the middleware's µs per added unit.

    Linear growth shows as steps of about the same size, from one row of a
    path to the next; a step much larger than the one before would mean a
    cost growing faster than the session.
    """
    print("\n## Cost growth (in process, µs per request, median)\n")
    columns = f"{'middleware':>12}{'store floor':>13}{'ratio':>8}{'step':>13}"
    print(f"{'session':<12}{'path':<9}{columns}")
    previous: dict[str, tuple[int, float]] = {}
    for amount, unit, path, (mine, floor) in rows:
        step = ""
        if path in previous:
            before, before_mine = previous[path]
            per_unit = (mine - before_mine) / (amount - before)
            step = f"{per_unit:.1f}/{unit.rstrip('s')}"
        previous[path] = (amount, mine)
        label = f"{amount} {unit}"
        print(
            f"{label:<12}{path:<9}{mine:>12.1f}{floor:>13.1f}"
            f"{mine / floor:>8.2f}{step:>13}"
        )


def _growth_row(
    systems: list[apps.System],
    cookies: dict[str, str],
    path: str,
    query: str,
    count: int,
    plan: Plan,
) -> tuple[float, float]:
    times: dict[str, list[float]] = {s.name: [] for s in systems}
    for rep in range(plan.growth_reps + 1):
        for system in systems if rep % 2 else systems[::-1]:
            environ = apps.environ_for(path, cookies[system.name], query)
            took = time_requests(system.app, environ, count if rep else 5)
            if rep:
                times[system.name].append(took.wall)
    mine, floor = (statistics.median(times[s.name]) * 1e6 for s in systems)
    return mine, floor


def median_us(times: Times, name: str, scenario: str, cpu: bool = False) -> float:
    """The median time per request of one system and scenario, in µs."""
    runs = times.get((name, scenario))
    if not runs:
        return float("nan")
    return statistics.median(run.cpu if cpu else run.wall for run in runs) * 1e6


def print_in_process(times: Times, names: list[str]) -> None:
    """Print the in-process table: µs per request and ratios to the floors."""
    print("\n## In process (µs per request, median of repetitions)\n")
    header = f"{'scenario':<11}" + "".join(f"{name:>15}" for name in names)
    rivals = "beaker redis" in names
    print(header + f"{'mw/floor':>10}" + (f"{'mw/redis':>10}" if rivals else ""))
    for scenario in SCENARIOS:
        cells = "".join(
            f"{median_us(times, name, scenario):>15.1f}"
            if (name, scenario) in times
            else " " * 15
            for name in names
        )
        mine = median_us(times, "middleware", scenario)
        floor = median_us(times, FLOOR_OF.get(scenario, "store floor"), scenario)
        line = f"{scenario:<11}{cells}{mine / floor:>10.2f}"
        if rivals:
            line += f"{mine / median_us(times, 'beaker redis', scenario):>10.2f}"
        print(line)
    print("\nmw/floor: to the bare app for untouched, else to the store floor")
    spread = _spread(times)
    print(f"spread between repetitions (max/min, median over cells): {spread:.2f}")
    print_own_work(times)


def print_own_work(times: Times) -> None:
    """Print the middleware's own work: its CPU time beyond the store floor's."""
    print("\n## The middleware's own work (CPU µs of the request thread)\n")
    print(f"{'scenario':<11}{'middleware':>12}{'store floor':>13}{'own work':>10}")
    for scenario in SCENARIOS[1:]:
        mine = median_us(times, "middleware", scenario, cpu=True)
        floor = median_us(times, "store floor", scenario, cpu=True)
        print(f"{scenario:<11}{mine:>12.1f}{floor:>13.1f}{mine - floor:>10.1f}")


def _spread(times: Times) -> float:
    ratios = [
        max(run.wall for run in runs) / min(run.wall for run in runs)
        for runs in times.values()
        if len(runs) > 1
    ]
    return statistics.median(ratios) if ratios else 1.0


class Waits(NamedTuple):
    """The middleware's time per request, and how much of it Aerospike took."""

    request_us: float
    waited_us: float
    calls: float


def aerospike_waits(config: dict[str, Any], plan: Plan) -> dict[str, Waits]:
    """Per scenario, the middleware's time waiting for Aerospike calls.

    Read from the store's own timings of its calls, so that nothing is
    wrapped around the client.
    """
    system = apps.middleware_system(config)
    store = system.app.manager.store  # type: ignore[attr-defined]
    cookies = seed_cookies(system)
    waits = {}
    for scenario in SCENARIOS[1:]:
        environ = scenario_environ(scenario, cookies)
        time_requests(system.app, environ, 50)
        runs = []
        for _ in range(max(plan.reps, 1)):
            store.metrics.reset()
            took = time_requests(system.app, environ, plan.requests)
            timings = store.metrics.snapshot()
            total = sum(v for k, v in timings.items() if k.endswith(".total"))
            calls = sum(v for k, v in timings.items() if k.endswith(".count"))
            per_request = (took.wall * 1e6, total / plan.requests * 1e6)
            runs.append(Waits(*per_request, calls / plan.requests))
        columns = zip(*runs, strict=True)
        waits[scenario] = Waits(*(statistics.median(column) for column in columns))
    system.close()
    return waits


def print_estimate(times: Times, waits: dict[str, Waits]) -> None:
    """Print the middleware's time with a real server's latency, an estimate."""
    print("\n## Against a real Aerospike server (an estimate, in process)\n")
    rivals = ("beaker redis", "untouched") in times
    header = f"{'scenario':<11}{'middleware':>12}{'waited':>9}{'calls':>7}"
    header += f"{'estimate':>10}"
    print(header + (f"{'beaker redis':>14}{'ratio':>7}" if rivals else ""))
    for scenario, wait in waits.items():
        estimate = wait.request_us - wait.waited_us + wait.calls * REAL_SERVER_CALL_US
        line = f"{scenario:<11}{wait.request_us:>12.1f}{wait.waited_us:>9.1f}"
        line += f"{wait.calls:>7.1f}{estimate:>10.1f}"
        if rivals:
            redis = median_us(times, "beaker redis", scenario)
            line += f"{redis:>14.1f}{estimate / redis:>7.2f}"
        print(line)
    print(
        f"\nestimate: the middleware's time with each Aerospike call taking "
        f"{REAL_SERVER_CALL_US:g} µs,\nas on a real server over loopback, "
        "instead of the embedded server's wait"
    )


# Over HTTP: gunicorn with two sync workers, and a load generator.


@dataclass
class Served:
    """One system served by gunicorn."""

    name: str
    port: int
    cookies: dict[str, str]
    proc: subprocess.Popen[Any]


def serve(
    name: str, config: dict[str, Any], redis_url: str | None, workdir: str
) -> Served:
    """Start gunicorn with two sync workers for system ``name``."""
    port = free_port()
    cookie_file = os.path.join(workdir, f"cookies-{port}.json")
    env = {
        **os.environ,
        "BENCH_CLIENT_CONFIG": json.dumps(config),
        "BENCH_REDIS_URL": redis_url or "",
        "BENCH_COOKIES": cookie_file,
    }
    command = [sys.executable, "-m", "gunicorn", "--pythonpath", str(HERE)]
    command += ["-b", f"127.0.0.1:{port}", "-w", "2", "-k", "sync", "--preload"]
    command += ["--log-level", "warning", f"apps:http_app({name!r})"]
    proc = subprocess.Popen(command, env=env, cwd=workdir)
    _wait_for_port(port, 60)
    with open(cookie_file, encoding="utf-8") as source:
        cookies = json.load(source)
    return Served(name, port, cookies, proc)


@dataclass
class Load:
    """What the load generator measured."""

    rps: float
    p50_ms: float
    p99_ms: float
    #: Answers other than ``200``, such as a ``503`` when the store timed out.
    errors: int = 0


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(wrk: str, url: str, cookie: str | None, seconds: float) -> Load:
    """Load ``url`` with wrk: one thread, four keep-alive connections."""
    command = [wrk, "-t1", "-c4", f"-d{seconds:g}s", "--latency", url]
    if cookie:
        command[1:1] = ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(failed.group(1)) if failed else 0
    return Load(rps, _wrk_percentile(out, "50"), _wrk_percentile(out, "99"), errors)


def _wrk_percentile(out: str, percent: str) -> float:
    found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if found is None:
        return float("nan")
    return float(found.group(1)) * _WRK_UNITS[found.group(2)]


def run_python_client(url: str, cookie: str | None, seconds: float) -> Load:
    """Load ``url`` from a separate Python process (when wrk is missing)."""
    command = [sys.executable, __file__, "--client", url, cookie or "", str(seconds)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return Load(**json.loads(out))


def python_client(url: str, cookie: str, seconds: float, connections: int = 4) -> None:
    """The fallback load generator: keep-alive connections on threads."""
    host, _, rest = url.removeprefix("http://").partition("/")
    address, _, port = host.partition(":")
    headers = {"Cookie": cookie} if cookie else {}
    latencies: list[float] = []
    statuses: list[int] = []
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(address, int(port))
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            conn.request("GET", "/" + rest, headers=headers)
            response = conn.getresponse()
            response.read()
            latencies.append(time.perf_counter() - started)
            statuses.append(response.status)
            if response.will_close:
                conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies) or [float("nan")]
    p50, p99 = (ordered[int(len(ordered) * q)] * 1000 for q in (0.5, 0.99))
    errors = sum(1 for status in statuses if status != 200)
    load = Load(len(ordered) / seconds, p50, p99, errors)
    print(json.dumps(dataclasses.asdict(load)))


def over_http(
    config: dict[str, Any],
    redis_url: str | None,
    names: list[str],
    plan: Plan,
    install: bool,
) -> None:
    """Serve every system with gunicorn and load each scenario in turns."""
    wrk = find_tool("wrk", "wrk", install)
    if wrk is None:
        print("wrk is missing: using the Python keep-alive client instead")
    loads: dict[tuple[str, str], list[Load]] = {}
    with tempfile.TemporaryDirectory() as workdir:
        served = [serve(name, config, redis_url, workdir) for name in names]
        try:
            for rep in range(plan.http_reps):
                for scenario in SCENARIOS:
                    for one in served if rep % 2 == 0 else served[::-1]:
                        if one.name == "bare app" and scenario != "untouched":
                            continue
                        load = _load_one(wrk, one, scenario, plan.http_seconds)
                        loads.setdefault((one.name, scenario), []).append(load)
        finally:
            for one in served:
                one.proc.terminate()
                one.proc.wait(timeout=30)
    print_http(loads, names, "wrk" if wrk else "Python client")


def _load_one(wrk: str | None, served: Served, scenario: str, seconds: float) -> Load:
    url = f"http://127.0.0.1:{served.port}/{scenario}"
    cookie = None
    if scenario != "new":
        cookie = served.cookies.get("big" if scenario == "big" else "small")
    if wrk is not None:
        return run_wrk(wrk, url, cookie, seconds)
    return run_python_client(url, cookie, seconds)


def print_http(
    loads: dict[tuple[str, str], list[Load]], names: list[str], tool: str
) -> None:
    """Print requests per second, median and p99 latency, and ratios."""
    print(f"\n## Over HTTP (gunicorn, 2 sync workers; {tool}, 4 connections)\n")
    columns = f"{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'rps/floor':>11}{'errors':>8}"
    print(f"{'scenario':<11}{'system':<15}{columns}")
    for scenario in SCENARIOS:
        floor = FLOOR_OF.get(scenario, "store floor")
        floor_rps = _median_load(loads.get((floor, scenario), [])).rps
        for name in names:
            runs = loads.get((name, scenario))
            if not runs:
                continue
            load = _median_load(runs)
            ratio = load.rps / floor_rps if floor_rps else float("nan")
            print(
                f"{scenario:<11}{name:<15}{load.rps:>9.0f}{load.p50_ms:>9.2f}"
                f"{load.p99_ms:>9.2f}{ratio:>11.2f}{load.errors:>8}"
            )
    print("\nrps/floor: to the bare app for untouched, else to the store floor;")
    print("errors: answers other than 200, over every repetition")


def _median_load(runs: list[Load]) -> Load:
    if not runs:
        return Load(0.0, float("nan"), float("nan"))
    return Load(
        statistics.median(run.rps for run in runs),
        statistics.median(run.p50_ms for run in runs),
        statistics.median(run.p99_ms for run in runs),
        sum(run.errors for run in runs),
    )


# The profile of the middleware's own work.


def profile(config: dict[str, Any], requests: int) -> None:
    """Profile the middleware on ``read`` and ``write``; print the top costs."""
    system = apps.middleware_system(config)
    cookie = apps.seed(system.app, apps.small_session())
    for scenario in ("read", "write"):
        environ = apps.environ_for(f"/{scenario}", cookie)
        time_requests(system.app, environ, 50)
        profiler = cProfile.Profile()
        profiler.runcall(time_requests, system.app, environ, requests)
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats("tottime").print_stats(18)
        print(f"\n## Profile of the middleware, {scenario} ({requests} requests)\n")
        print(_trim_profile(stream.getvalue()))
    system.close()


def _trim_profile(text: str) -> str:
    """The table of a profile, each file named by its folder and name only."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    table = "\n".join(lines[start:]).rstrip()
    return re.sub(r"\S*/([\w.-]+/[\w.-]+\.py:)", r"\1", table)


# The command line.


def main() -> int:
    """Parse the options and run everything asked for."""
    args = parse_args()
    if args.client:
        python_client(args.client[0], args.client[1], float(args.client[2]))
        return 0
    plan = SMOKE if args.smoke else FULL
    started = time.perf_counter()
    try:
        run_all(args, plan)
    except SystemFailed as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    print(f"\ndone in {time.perf_counter() - started:.0f} s; {_load_average()}")
    return 0


def run_all(args: argparse.Namespace, plan: Plan) -> None:
    """Start the services, and run every level the options ask for."""
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {os.cpu_count()} cores, {python}, {_load_average()}")
    redis_service = (
        no_redis("a smoke run needs no redis-server")
        if args.smoke
        else redis_backend(install=True)
    )
    with aerospike_backend() as backend, redis_service as redis:
        config, redis_url = backend.config, redis.url
        names = [n for n in apps.SYSTEM_NAMES if redis_url or n != "beaker redis"]
        with pinned([backend.pid, redis.pid]):
            systems = [apps.build_system(n, config, redis_url or "") for n in names]
            times = in_process(systems, plan)
            print_in_process(times, names)
            for system in systems:
                system.close()
            if backend.pid is not None:
                print_estimate(times, aerospike_waits(config, plan))
            if not args.smoke:
                growth(config, plan)
            if args.profile:
                profile(config, 300 if args.smoke else 3000)
        if not args.smoke and not args.no_http:
            over_http(config, redis_url, names, plan, install=True)


def _load_average() -> str:
    """The machine's load average, to tell a quiet run from a busy one."""
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    return "load average " + " ".join(f"{load:.1f}" for load in os.getloadavg())


def parse_args() -> argparse.Namespace:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a quick run, in process")
    parser.add_argument("--profile", action="store_true", help="profile the middleware")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP level")
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
