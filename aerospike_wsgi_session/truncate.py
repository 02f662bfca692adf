"""Truncation through info commands, which works against the embedded server.

The client's own ``truncate()`` keeps Python's global interpreter lock while
it waits for the answer (aerospike 19.x). An embedded server running in the
same process then cannot answer, and the call fails with a timeout after the
info timeout. ``info_all`` releases the lock, so this helper sends the same
info command through it; against a real cluster it does what ``truncate()``
does, on every node.

A server compares last-update times with the truncate time in whole
milliseconds and spares the records of the truncate's own millisecond, so a
truncate "up to now" first lets that millisecond pass.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .exc import StoreError

logger = logging.getLogger(__name__)

#: Seconds to wait before a truncate "up to now": over a millisecond of real
#: time, so the server's clock is in a later millisecond than any write that
#: was answered before the call, whatever its skew.
SETTLE_SECONDS = 0.002


class TruncateError(StoreError):
    """A node refused the truncate command."""


def truncate(
    client: Any,
    namespace: str,
    set_name: str | None = None,
    before_ns: int | None = None,
) -> None:
    """Delete the records of a set, or of a whole namespace.

    A real server answers at once and deletes in the background, so a read
    just afterwards may still find a record for a moment.

    :param client: a connected ``aerospike`` client.
    :param namespace: the namespace.
    :param set_name: the set; ``None`` truncates the whole namespace.
    :param before_ns: only records last updated before this Unix time in
        nanoseconds go; ``None`` means every record written before the call
        (the call then waits :data:`SETTLE_SECONDS` first). A server on a
        ``ManualClock`` needs that clock moved on instead.
    :raises TruncateError: if a node answers with an error.
    """
    if set_name is None:
        command = f"truncate-namespace:namespace={namespace}"
    else:
        command = f"truncate:namespace={namespace};set={set_name}"
    if before_ns is None:
        time.sleep(SETTLE_SECONDS)
    else:
        command += f";lut={before_ns}"

    for node, (error, answer) in client.info_all(command).items():
        if error is not None or not answer.strip().lower().startswith("ok"):
            raise TruncateError(f"node {node} refused {command!r}: {answer!r}")
