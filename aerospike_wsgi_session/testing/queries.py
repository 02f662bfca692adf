"""Scans and queries in partition form, streamed as many record messages.

The client lists the partitions it wants (all 4096 for one node) and may
carry a resume digest per partition, a record limit, selected bins and, for a
query, one filter on an indexed bin. The stream ends with a LAST message,
whose result code reports failures such as a missing index (201).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

from . import particles
from .msgpack import CdtList, CdtMap
from .records import Index, Namespace, Record
from .store import Store
from .wire import (
    FIELD_DIGEST,
    FIELD_DIGEST_ARRAY,
    FIELD_INDEX_NAME,
    FIELD_INDEX_RANGE,
    FIELD_INDEX_TYPE,
    FIELD_KEY,
    FIELD_MAX_RECORDS,
    FIELD_NAMESPACE,
    FIELD_PARTITIONS,
    FIELD_SET,
    INFO1_NOBINDATA,
    INFO3_LAST,
    INFO3_PARTITION_DONE,
    PARTICLE_INTEGER,
    Message,
    ProtocolError,
    encode_field,
    encode_message,
    encode_op,
)

logger = logging.getLogger(__name__)

RC_NAMESPACE = 20
RC_INDEX_NOT_FOUND = 201
N_PARTITIONS = 4096
CHUNK_SIZE = 64 * 1024

_DONE = [
    encode_message(0, pid, info3=INFO3_PARTITION_DONE) for pid in range(N_PARTITIONS)
]
_INT = struct.Struct(">q")


class Filter(NamedTuple):
    """A query filter: bin, particle type and the inclusive value range."""

    bin: bytes
    ptype: int
    begin: bytes
    end: bytes


def execute(store: Store, msg: Message) -> Iterator[bytes]:
    """Run a scan or query and yield the response bodies, in chunks.

    :param store: the server's data.
    :param msg: the parsed request (no digest field).
    :raises ProtocolError: for a malformed filter or partition list.
    """
    namespace = store.namespaces.get(msg.fields.get(FIELD_NAMESPACE, b""))
    if namespace is None:
        yield encode_message(RC_NAMESPACE, info3=INFO3_LAST)
        return
    index, query = _index_for(namespace, msg)
    if FIELD_INDEX_RANGE in msg.fields and index is None:
        yield encode_message(RC_INDEX_NOT_FOUND, info3=INFO3_LAST)
        return

    chunk: list[bytes] = []
    size = 0
    for part in _stream(store, namespace, msg, index, query):
        chunk.append(part)
        size += len(part)
        if size >= CHUNK_SIZE:
            yield b"".join(chunk)
            chunk, size = [], 0
    chunk.append(encode_message(0, info3=INFO3_LAST))
    yield b"".join(chunk)


def _stream(
    store: Store,
    namespace: Namespace,
    msg: Message,
    index: Index | None,
    query: Filter | None,
) -> Iterator[bytes]:
    wanted, resume = _partitions(msg)
    limit = _max_records(msg)
    records = _select(store, namespace, msg, wanted, resume, index, query)
    ns_field = encode_field(FIELD_NAMESPACE, msg.fields[FIELD_NAMESPACE])
    report_done = bool(msg.info3 & INFO3_PARTITION_DONE)

    sent, by_pid = 0, _group(records)
    for pid in sorted(wanted):
        for record, bins in by_pid.get(pid, ()):
            if limit and sent >= limit:
                return
            yield _record_message(ns_field, record, bins)
            sent += 1
        if report_done:
            yield _DONE[pid]


def _select(
    store: Store,
    namespace: Namespace,
    msg: Message,
    wanted: set[int],
    resume: dict[int, bytes],
    index: Index | None,
    query: Filter | None,
) -> list[tuple[Record, bytes]]:
    set_name = msg.fields.get(FIELD_SET) or None
    names = {op.name for op in msg.ops if op.name}
    no_bins = bool(msg.info1 & INFO1_NOBINDATA)
    with store.lock:
        chosen = []
        for record in namespace.scan(set_name, store.now()):
            pid = partition_id(record.digest)
            if pid not in wanted or record.digest <= resume.get(pid, b""):
                continue
            if query is None or _matches(record, index, query):
                chosen.append((record, _bins_of(record, names, no_bins)))
    return chosen


def _group(
    records: list[tuple[Record, bytes]],
) -> dict[int, list[tuple[Record, bytes]]]:
    by_pid: dict[int, list[tuple[Record, bytes]]] = {}
    for item in sorted(records, key=lambda item: item[0].digest):
        by_pid.setdefault(partition_id(item[0].digest), []).append(item)
    return by_pid


def partition_id(digest: bytes) -> int:
    """Return the partition (0-4095) a record digest falls into.

    :param digest: the 20-byte digest.
    """
    return (digest[0] | digest[1] << 8) & (N_PARTITIONS - 1)


def _partitions(msg: Message) -> tuple[set[int], dict[int, bytes]]:
    raw = msg.fields.get(FIELD_PARTITIONS)
    wanted = set(range(N_PARTITIONS)) if raw is None else set()
    if raw is not None:
        if len(raw) % 2:
            raise ProtocolError("partition id field of odd length")
        wanted = {raw[i] | raw[i + 1] << 8 for i in range(0, len(raw), 2)}
    digests = msg.fields.get(FIELD_DIGEST_ARRAY, b"")
    resume = {}
    for start in range(0, len(digests) - 19, 20):
        digest = digests[start : start + 20]
        resume[partition_id(digest)] = digest
    return wanted | set(resume), resume


def _max_records(msg: Message) -> int:
    raw = msg.fields.get(FIELD_MAX_RECORDS)
    return int.from_bytes(raw, "big") if raw else 0


def _bins_of(record: Record, names: set[bytes], no_bins: bool) -> bytes:
    if no_bins:
        return b""
    if not names:
        return record.encoded_bins()
    picked = [(n, p) for n, p in record.bins.items() if n in names]
    return b"".join(encode_op(p[0], n, p[1]) for n, p in picked)


def _record_message(ns_field: bytes, record: Record, bins: bytes) -> bytes:
    fields = [ns_field, encode_field(FIELD_DIGEST, record.digest)]
    if record.set_name:
        fields.append(encode_field(FIELD_SET, record.set_name))
    if record.key is not None:
        fields.append(encode_field(FIELD_KEY, record.key))
    n_ops = _count_ops(bins)
    return encode_message(
        0,
        record.generation,
        record.void_time,
        fields=b"".join(fields),
        n_fields=len(fields),
        ops=bins,
        n_ops=n_ops,
    )


def _count_ops(ops: bytes) -> int:
    count, pos = 0, 0
    while pos < len(ops):
        pos += 4 + int.from_bytes(ops[pos : pos + 4], "big")
        count += 1
    return count


def _index_for(
    namespace: Namespace, msg: Message
) -> tuple[Index | None, Filter | None]:
    raw = msg.fields.get(FIELD_INDEX_RANGE)
    if raw is None:
        return None, None
    query = parse_filter(raw)
    collection = msg.fields.get(FIELD_INDEX_TYPE, b"\0")[0]
    set_name = msg.fields.get(FIELD_SET) or None
    name = msg.fields.get(FIELD_INDEX_NAME)
    with_name = namespace.indexes.get(name.decode()) if name else None
    candidates = [with_name] if with_name else list(namespace.indexes.values())
    for index in candidates:
        if (index.bin, index.ptype, index.collection) != (
            query.bin,
            query.ptype,
            collection,
        ):
            continue
        if index.set_name is None or index.set_name == set_name:
            return index, query
    return None, query


def parse_filter(raw: bytes) -> Filter:
    """Parse the index range field of a query.

    :param raw: the field data.
    :raises ProtocolError: if it is malformed or holds more than one filter.
    """
    try:
        if raw[0] != 1:
            raise ProtocolError(f"query with {raw[0]} filters")
        name_end = 2 + raw[1]
        ptype = raw[name_end]
        begin_len = int.from_bytes(raw[name_end + 1 : name_end + 5], "big")
        begin_end = name_end + 5 + begin_len
        end_len = int.from_bytes(raw[begin_end : begin_end + 4], "big")
        end = raw[begin_end + 4 : begin_end + 4 + end_len]
    except IndexError as err:
        raise ProtocolError("truncated query filter") from err
    return Filter(raw[2:name_end], ptype, raw[name_end + 5 : begin_end], end)


def _matches(record: Record, index: Index | None, query: Filter) -> bool:
    if index is not None and index.set_name not in (None, record.set_name):
        return False
    particle = record.bins.get(query.bin)
    if particle is None:
        return False
    collection = index.collection if index is not None else 0
    if collection == 0:
        return particle[0] == query.ptype and _in_range(particle[1], query)
    values = _elements(particles.decode(*particle), collection)
    wanted = particles.encode
    return any(
        wanted(v)[0] == query.ptype and _in_range(wanted(v)[1], query) for v in values
    )


def _elements(value: Any, collection: int) -> list[Any]:
    if collection == 1 and isinstance(value, CdtList):
        return list(value)
    if collection == 2 and isinstance(value, CdtMap):
        return list(value.keys())
    if collection == 3 and isinstance(value, CdtMap):
        return list(value.values())
    return []


def _in_range(data: bytes, query: Filter) -> bool:
    if query.ptype != PARTICLE_INTEGER:
        return data == query.begin
    value = _INT.unpack(data)[0]
    low, high = _INT.unpack(query.begin)[0], _INT.unpack(query.end)[0]
    return bool(low <= value <= high)
