"""An embedded Aerospike server for tests, driven by the real ``aerospike`` client.

:class:`AerospikeServer` speaks the Aerospike wire protocol over loopback TCP
from background threads of your own process, so the official client connects
to it as to a one-node Aerospike 8.x cluster::

    import aerospike
    from aerospike_wsgi_session.testing import AerospikeServer, ManualClock

    clock = ManualClock()
    with AerospikeServer(clock=clock) as server:
        client = aerospike.client({"hosts": server.hosts})
        client.put(("test", "demo", "k"), {"v": 1}, policy={"ttl": 60})
        clock.advance(61)                  # the record has now expired
        server.fail_next(1, 14)            # the next command answers "key busy"

What it supports: connecting and tending (user/password logins are answered
"security not enabled"), get, select, exists, put with every exists and
generation policy, TTLs with expiry by the server's clock (including
``read_touch_ttl_percent``), remove, touch, operate and operate_ordered with
read, write, increment, append, prepend, touch, delete and the common map
operations, scans and queries in partition form, secondary indexes (equality
on string and integer bins, integer ranges), truncation, compressed requests
and the info commands clients and tools use. Results follow a real server,
result codes included (2, 3, 4, 5, 12, 13, 16, 19, 20, 21, 22, 23, 24, 200,
201). The client refuses a bin name over 15 bytes itself, before sending
anything; the server's own answer to one, 21, only reaches hand-built
requests.

For tests: ``server.fail_next()``, ``server.delay``, ``server.drop_connections()``,
``server.restart()``, ``server.clear()``, ``server.stats`` (data commands
served, by kind) and a :class:`ManualClock`. The pytest plugin of this
package provides the fixtures ``aerospike_hosts``, ``aerospike_namespace``,
``aerospike_client``, ``aerospike_set``, ``aerospike_server`` and
``aerospike_connect``; setting ``AEROSPIKE_HOSTS`` runs the same tests
against a real cluster.

Truncation: the client's own ``truncate()`` keeps Python's global
interpreter lock while it waits, so against a server in the same process it
always times out. Use :func:`truncate` instead, which also works against
real clusters. Servers spare records written in the truncate's own
millisecond: :func:`truncate` waits that millisecond out, and on a
:class:`ManualClock` a test moves the clock on. A real server deletes in the
background; :func:`scan_until` waits for a set to settle.

Known differences from a real server: batch commands and filter expressions
are refused (code 16); list, bit, HLL, string and expression operations are
refused (code 4, or 12 for a list operation on a list bin); no UDFs.
Truncation is done before the answer, and a truncate time in the future is
accepted where a real server refuses it. The ``objects`` and data sizes in
info count live records only, where a real server may still count expired
records its expiry sweep has not removed. Record sizes are a model, matched
to a real server's limit for one bin and no TTL. Queries scan the set:
index statistics are zeros and an index is ready at once.
The metadata ``ttl`` the client reports is computed against the client's
real clock, so it looks odd once a :class:`ManualClock` has moved far.

NOT for production: records live in memory only (no persistence), there is
one node (no clustering, replication or strong consistency), no TLS and no
real security.
"""

from __future__ import annotations

from ..truncate import TruncateError, truncate
from .clock import ManualClock
from .records import NamespaceConfig
from .server import AerospikeServer
from .waiting import scan_until

__all__ = [
    "AerospikeServer",
    "ManualClock",
    "NamespaceConfig",
    "TruncateError",
    "scan_until",
    "truncate",
]
