"""Many threads and processes on one server: no errors, exact final state."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

import aerospike
from aerospike_helpers.operations import map_operations as mo
from aerospike_helpers.operations import operations as op

OPS_PER_WORKER = 2000
THREADS = 8
PROCESSES = 2


def work(client: Any, ns: str, set_name: str, worker: int) -> None:
    """Run the mixed operations of one worker; raise on any surprise."""
    counter, shared_map = (ns, set_name, "counter"), (ns, set_name, "map")
    for i in range(OPS_PER_WORKER):
        step = i % 4
        own = (ns, set_name, f"w{worker}-{i // 4}")
        if step == 0:
            client.operate(counter, [op.increment("n", 1)])
        elif step == 1:
            client.put(own, {"w": worker, "i": i})
        elif step == 2:
            bins = client.get(own)[2]
            if bins != {"w": worker, "i": i - 1}:
                raise AssertionError(f"worker {worker} read {bins!r}")
        else:
            client.operate(shared_map, [mo.map_increment("m", f"w{worker}", 1)])


def test_threads_and_processes_keep_exact_counts(
    aerospike_client: Any,
    aerospike_hosts: list[tuple[str, int]],
    aerospike_namespace: str,
    aerospike_set: str,
) -> None:
    ns, set_name = aerospike_namespace, aerospike_set
    args = [json.dumps(aerospike_hosts), ns, set_name]
    children = [
        subprocess.Popen([sys.executable, __file__, *args, str(THREADS + n)])
        for n in range(PROCESSES)
    ]
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            work(aerospike_client, ns, set_name, worker)
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = [child.wait(timeout=120) for child in children]

    workers = THREADS + PROCESSES
    per_worker = OPS_PER_WORKER // 4
    assert errors == [] and codes == [0] * PROCESSES
    assert aerospike_client.get((ns, set_name, "counter"))[2] == {
        "n": workers * per_worker
    }
    expected_map = {f"w{w}": per_worker for w in range(workers)}
    assert aerospike_client.get((ns, set_name, "map"))[2] == {"m": expected_map}
    records = aerospike_client.scan(ns, set_name).results()
    assert len(records) == workers * per_worker + 2


if __name__ == "__main__":
    hosts, namespace, set_arg, worker_arg = sys.argv[1:5]
    seeds = [(host, port) for host, port in json.loads(hosts)]
    worker_client = aerospike.client({"hosts": seeds})
    work(worker_client, namespace, set_arg, int(worker_arg))
    worker_client.close()
