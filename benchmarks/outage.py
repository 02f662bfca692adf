"""A steady load through the middleware while Aerospike goes away and comes back.

Run: ``python benchmarks/outage.py`` (about a minute), or with
``--policy raise|degrade``, ``--fault down|slow``, ``--threads``, the phase
lengths ``--up``, ``--down``, ``--after`` (seconds) and the store's
``--cooldown``. ``--quick`` runs short phases, for a smoke test.

Each worker thread is one user with a session of its own, making a request
every few milliseconds (one in four changes the session) straight into the
WSGI callable. After ``--up`` seconds the embedded server (in this process)
is stopped, or made slower than the client's timeouts (``slow``); after
``--down`` more seconds it is started again, or made fast, and the load goes
on for ``--after`` seconds. Printed per run: requests served by phase, their
outcomes, the slowest request while Aerospike was away, the store's errors by
kind, the time from the server's return to the first good answer and to the
last bad one, and whether every acknowledged change is still in its session.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apps import call, environ_for

from aerospike_wsgi_session import AerospikeStore, SessionMiddleware
from aerospike_wsgi_session.signing import Signer
from aerospike_wsgi_session.testing import AerospikeServer

SECRET = "outage-benchmark-secret-0123456789abcdef"
SET = "outage"
WRITE_EVERY = 4
#: A server delay well past the store's default 500 ms total timeout.
SLOW_SECONDS = 1.0


@dataclass
class Plan:
    """How long each phase lasts, and how hard the load is."""

    threads: int = 8
    up: float = 2.0
    down: float = 4.0
    after: float = 8.0
    interval: float = 0.005
    cooldown: float = 5.0


QUICK = Plan(threads=4, up=0.2, down=0.3, after=0.6, cooldown=0.2)


def counter_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """``/write`` adds one to the session's ``n``; ``/read`` only reads it.

    Answers ``X-Empty: 1`` when the session has no ``n``, which for a user
    who already wrote means a degraded, empty session.
    """
    session = environ["aerospike.session"]
    if environ["PATH_INFO"] == "/write":
        session["n"] = session.get("n", 0) + 1
    empty = "n" not in session
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Empty", str(+empty))])
    return [str(session.get("n")).encode()]


class LogCounter(logging.Handler):
    """Counts the package's log records by level, instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname.lower()] += 1

    def __enter__(self) -> LogCounter:
        package = logging.getLogger("aerospike_wsgi_session")
        package.addHandler(self)
        package.propagate = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        package = logging.getLogger("aerospike_wsgi_session")
        package.removeHandler(self)
        package.propagate = True


@dataclass
class User:
    """One worker: its ``Cookie`` header, and what it did and saw."""

    cookie: str | None = None
    acknowledged: int = 0
    failed_writes: int = 0
    events: list[tuple[float, float, str]] = field(default_factory=list)

    def request(self, app: Any, write: bool) -> None:
        path = "/write" if write else "/read"
        started = time.monotonic()
        outcome = self._outcome(app, path)
        self.events.append((started, time.monotonic(), outcome))
        if write and outcome == "ok":
            self.acknowledged += 1
        elif write:
            self.failed_writes += 1

    def _outcome(self, app: Any, path: str) -> str:
        try:
            status, header_list = call(app, environ_for(path, self.cookie))
        except Exception as err:
            return f"raised {type(err).__name__}"
        headers = dict(header_list)
        cookie = headers.get("Set-Cookie", "")
        if cookie.startswith("session="):
            self.cookie = cookie.split(";")[0]
        if not status.startswith("200"):
            return status.split()[0]
        return "empty" if headers["X-Empty"] == "1" else "ok"


def load(app: Any, user: User, stop: threading.Event, interval: float) -> None:
    """Make requests until ``stop`` is set; every fourth one writes."""
    number = 0
    while not stop.is_set():
        user.request(app, write=number % WRITE_EVERY == 0)
        number += 1
        stop.wait(interval)


@dataclass
class Run:
    """The timeline and the figures of one run."""

    policy: str
    fault: str
    users: list[User]
    fault_at: float
    back_at: float
    errors: dict[str, float]
    kept: list[bool]
    logged: Counter[str]

    def events(self) -> list[tuple[float, float, str]]:
        return sorted(event for user in self.users for event in user.events)

    def phase(self, start: float, end: float) -> Counter[str]:
        return Counter(out for began, _, out in self.events() if start <= began < end)

    def recovery(self) -> tuple[float | None, float | None]:
        """Seconds from the server's return to the first good and last bad answer."""
        after = [
            (began, out) for began, _, out in self.events() if began >= self.back_at
        ]
        good = [began for began, out in after if out == "ok"]
        bad = [began for began, out in after if out != "ok"]
        first = good[0] - self.back_at if good else None
        last = bad[-1] - self.back_at if bad else 0.0
        return first, last

    def slowest_while_away(self) -> float:
        away = [
            ended - began
            for began, ended, _ in self.events()
            if self.fault_at <= began < self.back_at
        ]
        return max(away, default=0.0)


FAULTS: dict[str, tuple[Callable[[AerospikeServer], None], ...]] = {
    "down": (lambda server: server.stop(), lambda server: server.start()),
    "slow": (
        lambda server: setattr(server, "delay", SLOW_SECONDS),
        lambda server: setattr(server, "delay", 0.0),
    ),
}


def run(policy: str, fault: str, plan: Plan) -> Run:
    """Start a server, load it, break it, mend it; return what was seen."""
    with AerospikeServer() as server:
        store = AerospikeStore(
            set=SET, hosts=server.hosts, breaker_cooldown=plan.cooldown
        )
        app = SessionMiddleware(
            counter_app,
            store,
            secret=SECRET,
            on_store_error=policy,  # type: ignore[arg-type]
        )
        users = [User() for _ in range(plan.threads)]
        for user in users:
            user.request(app, write=True)
        for user in users:
            user.events.clear()
        with LogCounter() as logged:
            fault_at, back_at = drive(app, users, server, FAULTS[fault], plan)
        errors = {k: v for k, v in store.metrics.snapshot().items() if "errors." in k}
        kept = [_intact(store, user) for user in users]
        store.close()
    return Run(policy, fault, users, fault_at, back_at, errors, kept, logged.counts)


def drive(
    app: Any,
    users: list[User],
    server: AerospikeServer,
    fault: tuple[Callable[[AerospikeServer], None], ...],
    plan: Plan,
) -> tuple[float, float]:
    """Run the load through the three phases; return when it broke and mended."""
    stop = threading.Event()
    workers = [
        threading.Thread(target=load, args=(app, user, stop, plan.interval))
        for user in users
    ]
    for worker in workers:
        worker.start()
    time.sleep(plan.up)

    # Away from when the fault is complete (stopping takes a moment) until
    # the server is mended.
    fault[0](server)
    fault_at = time.monotonic()
    time.sleep(plan.down)
    back_at = time.monotonic()
    fault[1](server)
    time.sleep(plan.after)

    stop.set()
    for worker in workers:
        worker.join()
    return fault_at, back_at


def _intact(store: AerospikeStore, user: User) -> bool:
    """Whether the stored count holds every acknowledged write, and no more
    than the writes that were sent."""
    assert user.cookie is not None
    verified = Signer(SECRET).unsign(user.cookie.partition("=")[2])
    assert verified is not None
    record = store.load(Signer(SECRET).record_key(verified[0]))
    stored = record.data.get("n", 0) if record else 0
    return user.acknowledged <= stored <= user.acknowledged + user.failed_writes


def report(result: Run, plan: Plan) -> None:
    """Print the figures of one run."""
    phases = [
        ("before", result.phase(0.0, result.fault_at)),
        ("while away", result.phase(result.fault_at, result.back_at)),
        ("after", result.phase(result.back_at, float("inf"))),
    ]
    print(f"\n== policy {result.policy}, server {result.fault} for {plan.down:g} s")
    for name, outcomes in phases:
        total = sum(outcomes.values())
        shown = ", ".join(f"{out} {count}" for out, count in sorted(outcomes.items()))
        print(f"  {name:<11} {total:>6} requests: {shown}")
    first, last = result.recovery()
    errors = ", ".join(f"{k[7:]} {v:g}" for k, v in sorted(result.errors.items()))
    print(f"  store errors by kind: {errors or 'none'}")
    logged = ", ".join(f"{n} {level}s" for level, n in sorted(result.logged.items()))
    print(f"  logged: {logged or 'nothing'}")
    print(f"  slowest request while away: {result.slowest_while_away() * 1000:.0f} ms")
    shown_first = "never" if first is None else f"{first:.2f} s"
    print(f"  back: first good answer after {shown_first}, last bad after {last:.2f} s")
    print(f"  sessions intact: {sum(result.kept)}/{len(result.kept)}")


def main(argv: list[str] | None = None) -> list[Run]:
    """Parse the options, run each policy against each fault, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", choices=["raise", "degrade"], action="append")
    parser.add_argument("--fault", choices=sorted(FAULTS), action="append")
    parser.add_argument("--quick", action="store_true", help="short phases")
    defaults = Plan()
    for name in ("threads", "up", "down", "after", "cooldown"):
        kind = int if name == "threads" else float
        parser.add_argument(f"--{name}", type=kind, default=None)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else defaults
    for name in ("threads", "up", "down", "after", "cooldown"):
        if getattr(args, name) is not None:
            setattr(plan, name, getattr(args, name))

    print(
        f"{plan.threads} users, a request each every {plan.interval * 1000:g} ms, "
        f"breaker cooldown {plan.cooldown:g} s, default client timeouts"
    )
    results = []
    for policy in args.policy or ["raise", "degrade"]:
        for fault in args.fault or ["down", "slow"]:
            results.append(run(policy, fault, plan))
            report(results[-1], plan)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
