"""Many requests of one session at once: updates kept, retries, save latency.

Run: ``python benchmarks/contention.py [--threads 20] [--requests 100]``, or
``--quick`` for a smoke run of a few hundred requests. An embedded Aerospike
server, a store and the middleware share this process; every request goes
through the real client over loopback and increments a counter in the session.

Scenarios, all on one session:

* ``alone``: one thread, no contention, the baseline of the ratios;
* ``disjoint``: each thread increments a key of its own;
* ``hot key``: every thread increments the same key;
* ``hot + busy``: the same, with the server answering "key busy" to a share
  of the writes, to show the bounded retry (``--busy``, 5% by default).

An increment reads the counter and writes it back, so on one key the save
that comes last wins and concurrent increments overwrite each other: "lost"
in the hot-key rows is that race in the application, not a lost write.
Disjoint keys must keep every increment.

The client, the server and the application share one interpreter, so under
contention a save mostly waits for its turn at the GIL: read the latency
ratios as an upper bound, and the kept, retries and errors columns as exact.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import webob
import webob.dec

from aerospike_wsgi_session import AerospikeStore, SessionMiddleware
from aerospike_wsgi_session.signing import Signer
from aerospike_wsgi_session.store import SaveResult
from aerospike_wsgi_session.testing import AerospikeServer

SECRET = secrets.token_urlsafe(32)
KEY_BUSY = 14
WAIT_SECONDS = 30


@webob.dec.wsgify
def counter_app(request: webob.Request) -> webob.Response:
    """Increment the session counter named by the path."""
    session = request.environ["aerospike.session"]
    key = request.path_info.strip("/")
    session[key] = session.get(key, 0) + 1
    return webob.Response("ok")


@dataclass
class Scenario:
    """One run: ``threads`` threads each sending ``requests`` requests."""

    name: str
    threads: int
    requests: int
    hot: bool = False
    busy_share: float = 0.0

    @property
    def attempted(self) -> int:
        return self.threads * self.requests

    def key(self, thread: int) -> str:
        return "hot" if self.hot else f"k{thread}"


@dataclass
class Outcome:
    """What a scenario did, and how long its saves and requests took."""

    scenario: Scenario
    answers: list[int] = field(default_factory=list)
    kept: int = 0
    retries: int = 0
    saves: list[float] = field(default_factory=list)
    seconds: float = 0.0
    writes: int = 0

    @property
    def errors(self) -> int:
        return sum(1 for status in self.answers if status != 200)

    @property
    def lost(self) -> int:
        return self.answers.count(200) - self.kept

    @property
    def rate(self) -> float:
        """Requests per second, all threads together."""
        return len(self.answers) / self.seconds


class TimedStore(AerospikeStore):
    """A store that records how long each save takes, retries included."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.save_times: list[float] = []

    def save(self, *args: Any, **kwargs: Any) -> SaveResult:
        started = time.perf_counter()
        try:
            return super().save(*args, **kwargs)
        finally:
            self.save_times.append(time.perf_counter() - started)


class Bench:
    """A store and the middleware on one embedded server, for one scenario."""

    def __init__(self, server: AerospikeServer, scenario: Scenario) -> None:
        self.server = server
        self.outcome = Outcome(scenario)
        self.store = TimedStore(
            set="contention",
            hosts=server.hosts,
            max_conns_per_node=max(100, 2 * scenario.threads),
        )
        self.app = SessionMiddleware(counter_app, self.store, secret=SECRET)
        self.cookie = ""

    def request(self, path: str) -> webob.Response:
        """One request through the middleware, with the session cookie."""
        request = webob.Request.blank(path, headers={"Cookie": self.cookie})
        # WebOb re-raises the error passed with a 503 unless told to catch it.
        return request.get_response(self.app, catch_exc_info=True)

    def run(self) -> Outcome:
        """Start the session, run every thread at once, check the final data."""
        start = self.request("/start")
        self.cookie = start.headers["Set-Cookie"].split(";")[0]
        scenario = self.outcome.scenario
        busy = round(scenario.attempted * scenario.busy_share)
        if busy:
            self.server.fail_next(busy, KEY_BUSY, commands="write")

        started = time.perf_counter()
        run_threads(scenario.threads, self._worker)
        self.outcome.seconds = time.perf_counter() - started
        data = self._final_data()
        del data["start"]
        self.outcome.kept = sum(data.values())
        self.outcome.retries = int(self.store.metrics.snapshot().get("retries", 0))
        self.outcome.saves = self.store.save_times[1:]
        self.outcome.writes = self.server.stats["operate"]
        self.store.close()
        return self.outcome

    def _worker(self, thread: int) -> None:
        path = f"/{self.outcome.scenario.key(thread)}"
        for _ in range(self.outcome.scenario.requests):
            # list.append is atomic, so the threads can share the list.
            self.outcome.answers.append(self.request(path).status_int)

    def _final_data(self) -> dict[str, int]:
        signer = Signer(SECRET)
        verified = signer.unsign(self.cookie.partition("=")[2])
        assert verified is not None
        record = self.store.load(signer.record_key(verified[0]))
        assert record is not None
        return record.data


def run_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` on ``count`` threads released together."""
    barrier = threading.Barrier(count, timeout=WAIT_SECONDS)

    def released(number: int) -> None:
        barrier.wait()
        work(number)

    threads = [threading.Thread(target=released, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def percentile(values: list[float], share: float) -> float:
    """The value below which ``share`` of ``values`` fall, in milliseconds."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, int(share * len(ordered)))
    return ordered[index] * 1000


def scenarios(threads: int, requests: int, busy: float) -> list[Scenario]:
    """The four scenarios; ``alone`` sends as many requests, on one thread."""
    return [
        Scenario("alone", 1, threads * requests),
        Scenario("disjoint", threads, requests),
        Scenario("hot key", threads, requests, hot=True),
        Scenario("hot + busy", threads, requests, hot=True, busy_share=busy),
    ]


HEADER = (
    f"{'scenario':<11}{'threads':>8}{'tried':>7}{'kept':>7}{'lost':>6}"
    f"{'retries':>8}{'errors':>7}{'w/req':>6}{'save p50':>10}{'p99':>7}{'req/s':>8}"
    f"{'x p50':>7}{'x p99':>7}{'x req/s':>8}"
)
LEGEND = """\
tried: increments sent; kept: increments in the final session; lost: answered
200 but not kept (the read-increment-write race of the hot key); errors: other
answers (503 when a write stayed busy past the retry bound); save: one store
save in ms, retries included; w/req: write commands the server received per
request; x: ratio to the 'alone' row."""


def row(outcome: Outcome, alone: Outcome) -> str:
    """One line of the table, with its ratios to the ``alone`` outcome."""
    s = outcome.scenario
    p50, p99 = percentile(outcome.saves, 0.5), percentile(outcome.saves, 0.99)
    base50, base99 = percentile(alone.saves, 0.5), percentile(alone.saves, 0.99)
    return (
        f"{s.name:<11}{s.threads:>8}{s.attempted:>7}{outcome.kept:>7}"
        f"{outcome.lost:>6}{outcome.retries:>8}{outcome.errors:>7}"
        f"{outcome.writes / len(outcome.answers):>6.2f}"
        f"{p50:>10.2f}{p99:>7.2f}{outcome.rate:>8.0f}"
        f"{p50 / base50:>7.1f}{p99 / base99:>7.1f}{outcome.rate / alone.rate:>8.2f}"
    )


def report(outcomes: list[Outcome]) -> None:
    """Print the table; the first outcome is the baseline of the ratios."""
    print(HEADER)
    for outcome in outcomes:
        print(row(outcome, outcomes[0]))
    print(LEGEND)


def parse_args(argv: list[str] | None = None) -> Any:
    """The command line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100, help="per thread")
    parser.add_argument("--busy", type=float, default=0.05, help="share of writes")
    parser.add_argument("--quick", action="store_true", help="a few hundred requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.threads, args.requests = 8, 20
    return args


def failures(outcomes: list[Outcome]) -> list[str]:
    """What went wrong where nothing may: the scenarios without a hot key."""
    return [
        f"{outcome.scenario.name}: kept {outcome.kept} of {outcome.scenario.attempted}"
        for outcome in outcomes
        if not outcome.scenario.hot
        and (outcome.kept != outcome.scenario.attempted or outcome.errors)
    ]


def main(argv: list[str] | None = None) -> int:
    """Run every scenario on a fresh embedded server and print the table.

    :returns: the exit status, 1 when an increment of a key that no other
        thread changes was lost or answered with an error.
    """
    args = parse_args(argv)
    # The 503s are counted in the table; their log lines would only bury it.
    logging.disable(logging.ERROR)
    outcomes = []
    for scenario in scenarios(args.threads, args.requests, args.busy):
        with AerospikeServer() as server:
            outcomes.append(Bench(server, scenario).run())
    report(outcomes)
    for failure in failures(outcomes):
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures(outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
