"""Truncation through info commands, which works against the embedded server.

The client's own ``truncate()`` keeps Python's global interpreter lock while
it waits for the answer (aerospike 19.x). An embedded server running in the
same process then cannot answer, and the call fails with a timeout after the
info timeout. ``info_all`` releases the lock, so this helper sends the same
info command through it; against a real cluster it does what ``truncate()``
does, on every node.
"""

from __future__ import annotations

import logging
from typing import Any

from .exc import StoreError

logger = logging.getLogger(__name__)


class TruncateError(StoreError):
    """A node refused the truncate command."""


def truncate(
    client: Any,
    namespace: str,
    set_name: str | None = None,
    before_ns: int | None = None,
) -> None:
    """Delete the records of a set, or of a whole namespace.

    :param client: a connected ``aerospike`` client.
    :param namespace: the namespace.
    :param set_name: the set; ``None`` truncates the whole namespace.
    :param before_ns: only records last updated before this Unix time in
        nanoseconds go; ``None`` means every record written up to now.
    :raises TruncateError: if a node answers with an error.
    """
    if set_name is None:
        command = f"truncate-namespace:namespace={namespace}"
    else:
        command = f"truncate:namespace={namespace};set={set_name}"
    if before_ns is not None:
        command += f";lut={before_ns}"

    for node, (error, answer) in client.info_all(command).items():
        if error is not None or not answer.strip().lower().startswith("ok"):
            raise TruncateError(f"node {node} refused {command!r}: {answer!r}")
