"""The store's self-check: is this cluster fit to keep our sessions?

Run it at deployment or startup (``store.check()``, the middleware's
``check_at_startup`` option, or ``python -m aerospike_wsgi_session check``)
to learn about a misconfiguration before the first user does.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from aerospike import exception as aerospike_errors

from .exc import CheckError, StoreError

if TYPE_CHECKING:
    from .store import AerospikeStore

logger = logging.getLogger(__name__)

#: The key of the probe record the check writes and deletes again. It lacks
#: the session marker, so it can never be loaded as a session.
PROBE_KEY = "aerospike-wsgi-session:check"
PROBE_TTL = 60

#: Below this, ordinary sessions would not fit in one record.
MIN_RECORD_SIZE = 16 * 1024


def check_store(store: AerospikeStore, ttl: int | None = None) -> dict[str, Any]:
    """Check that ``store`` can keep sessions, and describe what it found.

    :param ttl: the TTL sessions will be written with; the store's own when
        ``None``. A positive one makes the check write a probe record with a
        TTL, which a namespace without expiry refuses.
    :returns: the namespace's settings that matter to sessions.
    :raises CheckError: with a message that names the problem.
    """
    namespaces = _info(store, "namespaces").split(";")
    if store.namespace not in namespaces:
        raise CheckError(
            f"namespace {store.namespace!r} does not exist; the cluster has "
            f"{', '.join(sorted(filter(None, namespaces))) or 'none'}"
        )
    config = _namespace_config(store)
    limit = int(config.get("max-record-size") or 1024 * 1024)
    store.max_record_size = limit
    if limit < MIN_RECORD_SIZE:
        raise CheckError(
            f"namespace {store.namespace!r} limits records to {limit} bytes, "
            f"too small for sessions (at least {MIN_RECORD_SIZE} needed)"
        )
    ttl = store.ttl if ttl is None else ttl
    if ttl is not None and ttl > 0:
        _probe_ttl_write(store)
    return {
        "namespace": store.namespace,
        "set": store.set,
        "max_record_size": limit,
        "default_ttl": int(config.get("default-ttl", 0)),
        "nsup_period": int(config.get("nsup-period", 0)),
        "ttl_writes": bool(ttl and ttl > 0),
    }


def _info(store: AerospikeStore, command: str) -> str:
    try:
        answers = store._call("check", lambda: store.client.info_all(command))
    except StoreError as err:
        raise CheckError(f"cannot reach Aerospike: {err}", err) from err
    texts = [str(answer).strip() for _, answer in answers.values() if answer]
    if not texts:
        raise CheckError(f"no node of the cluster answered {command!r}")
    return texts[0]


def _namespace_config(store: AerospikeStore) -> dict[str, str]:
    text = _info(store, f"namespace/{store.namespace}")
    pairs = (item.partition("=") for item in text.split(";") if "=" in item)
    return {name: value for name, _, value in pairs}


def _probe_ttl_write(store: AerospikeStore) -> None:
    key = store.key(PROBE_KEY)
    policy = {"ttl": PROBE_TTL}
    try:
        store._call("check", lambda: store.client.put(key, {"probe": 1}, policy=policy))
    except StoreError as err:
        if isinstance(err.cause, aerospike_errors.ForbiddenError):
            raise CheckError(
                f"namespace {store.namespace!r} refuses records with a TTL: it has "
                "no expiry (nsup-period 0). Set nsup-period, or "
                "allow-ttl-without-nsup, or write sessions with ttl=0 or -1",
                err,
            ) from err
        raise CheckError(f"a test write failed: {err}", err) from err
    # Processes starting together (gunicorn workers) share the probe key:
    # another one may have removed it already, which is just as good.
    with contextlib.suppress(aerospike_errors.RecordNotFound):
        store._call("check", lambda: store.client.remove(key))
    logger.debug("self-check wrote and removed a probe record with a TTL")
