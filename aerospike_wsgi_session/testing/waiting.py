"""Waiting for a real server's background work, such as truncation."""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.02


def scan_until(
    client: Any,
    namespace: str,
    set_name: str | None,
    count: int,
    timeout: float = 2.0,
) -> list[Any]:
    """Scan a set until it holds ``count`` records; return the last results.

    The embedded server truncates before it answers, so the first scan
    settles there; a real server deletes in the background. After
    ``timeout`` seconds the results are returned as they are, for the
    caller's assertion to report.

    :param client: a connected ``aerospike`` client.
    :param namespace: the namespace.
    :param set_name: the set, or ``None`` for the whole namespace.
    :param count: how many records the scan should find.
    :param timeout: how long to keep scanning, in seconds.
    """
    deadline = time.monotonic() + timeout
    records: list[Any] = client.scan(namespace, set_name).results()
    while len(records) != count and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        records = client.scan(namespace, set_name).results()
    if len(records) != count:
        logger.debug("scan still finds %d records, not %d", len(records), count)
    return records
