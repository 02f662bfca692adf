"""Operations per second of the embedded server, through the real client.

Run: ``python benchmarks/server_ops.py [--seconds 2] [--threads 4]
[--warmup 1]``. Each figure is one kind of command (get, put, operate) for a
fixed time, first on one thread, then on several threads sharing one client,
after an unmeasured warm-up run of the same command. The client and the
server share the process, as they do in a test suite.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from typing import Any

import aerospike
from aerospike_helpers.operations import map_operations, operations

from aerospike_wsgi_session.testing import AerospikeServer

NAMESPACE, SET = "test", "bench"
PAYLOAD = {"data": "x" * 80, "n": 1}


def commands(client: Any) -> dict[str, Callable[[int], Any]]:
    """Return one callable per measured command, taking a key number."""

    def key(i: int) -> tuple[str, str, int]:
        return (NAMESPACE, SET, i % 1000)

    ops = [
        operations.increment("n", 1),
        map_operations.map_put("m", "k", "v"),
        operations.read("n"),
    ]
    return {
        "get": lambda i: client.get(key(i)),
        "put": lambda i: client.put(key(i), PAYLOAD),
        "operate": lambda i: client.operate(key(i), ops),
    }


def measure(call: Callable[[int], Any], seconds: float, threads: int) -> float:
    """Run ``call`` on ``threads`` threads for ``seconds``; return ops/s."""
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(slot: int) -> None:
        i = slot * 100_000
        while time.perf_counter() < deadline:
            call(i)
            i += 1
        counts[slot] = i - slot * 100_000

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=1.0)
    return parser.parse_args()


def report(client: Any, args: argparse.Namespace) -> None:
    """Warm up, measure and print each command, one line per command."""
    print(f"{'command':<10}{'1 thread':>12}{f'{args.threads} threads':>14}")
    for name, call in commands(client).items():
        measure(call, args.warmup, 1)
        single = measure(call, args.seconds, 1)
        several = measure(call, args.seconds, args.threads)
        print(f"{name:<10}{single:>12,.0f}{several:>14,.0f}  ops/s")


def main() -> None:
    """Start a server, fill it and print the figures."""
    args = parse_args()
    with AerospikeServer() as server:
        client = aerospike.client({"hosts": server.hosts})
        for i in range(1000):
            client.put((NAMESPACE, SET, i), PAYLOAD)
        report(client, args)
        client.close()


if __name__ == "__main__":
    main()
