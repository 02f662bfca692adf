"""Single-record commands: get, exists, put, remove, touch and operate.

The rules follow a real 8.x server: a generation check against a missing
record compares with 0, a record left without bins is deleted, writes that
must not create (update-only, replace-only, touch) answer 2 on a missing
record, and a failed command changes nothing.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

from . import particles
from .cdt import CdtError, map_op
from .particles import Particle
from .records import MAX_TTL, Namespace, Record, record_size
from .ripemd160 import key_digest
from .store import Store
from .wire import (
    FIELD_BATCH,
    FIELD_DIGEST,
    FIELD_INDEX_RANGE,
    FIELD_KEY,
    FIELD_NAMESPACE,
    FIELD_SET,
    INFO1_GET_ALL,
    INFO1_NOBINDATA,
    INFO2_CREATE_ONLY,
    INFO2_DELETE,
    INFO2_GENERATION,
    INFO2_GENERATION_GT,
    INFO2_RESPOND_ALL_OPS,
    INFO2_WRITE,
    INFO3_CREATE_OR_REPLACE,
    INFO3_REPLACE_ONLY,
    INFO3_UPDATE_ONLY,
    OP_APPEND,
    OP_CDT_MODIFY,
    OP_CDT_READ,
    OP_DELETE,
    OP_INCR,
    OP_PREPEND,
    OP_READ,
    OP_TOUCH,
    OP_WRITE,
    PARTICLE_BLOB,
    PARTICLE_FLOAT,
    PARTICLE_INTEGER,
    PARTICLE_NIL,
    PARTICLE_STRING,
    UNSUPPORTED_OPS,
    Message,
    Op,
    ProtocolError,
    encode_message,
    encode_op,
)

logger = logging.getLogger(__name__)

RC_OK = 0
RC_NOT_FOUND = 2
RC_GENERATION = 3
RC_PARAMETER = 4
RC_EXISTS = 5
RC_INCOMPATIBLE = 12
RC_TOO_BIG = 13
RC_KEY_MISMATCH = 19
RC_NAMESPACE = 20
RC_BIN_NAME = 21
RC_FORBIDDEN = 22

TTL_NEVER = 0xFFFFFFFF
TTL_KEEP = 0xFFFFFFFE
MAX_BIN_NAME = 15

_INT = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")
_WRITE_OPS = frozenset({OP_WRITE, OP_INCR, OP_APPEND, OP_PREPEND, OP_TOUCH})
_READ_OPS = frozenset({OP_READ, OP_CDT_READ})
_KNOWN_OPS = _WRITE_OPS | _READ_OPS | {OP_CDT_MODIFY, OP_DELETE}


class CommandError(Exception):
    """A command fails with a result code and changes nothing.

    :param rc: the result code to answer.
    """

    def __init__(self, rc: int) -> None:
        super().__init__(rc)
        self.rc = rc


def validate(msg: Message) -> None:
    """Refuse a data message with an op code no server knows.

    :param msg: the parsed request.
    :raises ProtocolError: naming the unknown op code.
    """
    for op in msg.ops:
        if op.code not in _KNOWN_OPS and op.code not in UNSUPPORTED_OPS:
            raise ProtocolError(f"unknown op code {op.code}")


def classify(msg: Message) -> str:
    """Return the kind of a data message, as counted in ``server.stats``.

    :param msg: the parsed request.
    """
    if FIELD_BATCH in msg.fields:
        return "batch"
    if FIELD_DIGEST not in msg.fields:
        return "query" if FIELD_INDEX_RANGE in msg.fields else "scan"
    if msg.info2 & INFO2_DELETE:
        return "delete"
    codes = {op.code for op in msg.ops}
    if msg.info2 & INFO2_WRITE:
        if codes == {OP_WRITE}:
            return "put"
        return "touch" if codes == {OP_TOUCH} else "operate"
    if msg.info1 & INFO1_NOBINDATA:
        return "exists"
    return "get" if codes <= {OP_READ} else "operate"


def execute(store: Store, msg: Message) -> bytes:
    """Run one single-record command and return the response body.

    :param store: the server's data.
    :param msg: the parsed request; it carries a digest field.
    :raises ProtocolError: for a request no client would send.
    """
    namespace = store.namespaces.get(msg.fields.get(FIELD_NAMESPACE, b""))
    digest = msg.fields[FIELD_DIGEST]
    if len(digest) != 20:
        raise ProtocolError(f"digest of {len(digest)} bytes")
    if namespace is None:
        return encode_message(RC_NAMESPACE)
    if not _key_matches(msg, digest):
        return encode_message(RC_KEY_MISMATCH)

    now = store.now()
    try:
        _check_ops(msg)
        with store.lock:
            return _dispatch(store, namespace, msg, digest, now)
    except CommandError as err:
        return encode_message(err.rc)


def _key_matches(msg: Message, digest: bytes) -> bool:
    key = msg.fields.get(FIELD_KEY)
    if key is None:
        return True
    return key_digest(msg.fields.get(FIELD_SET, b""), key) == digest


def _check_ops(msg: Message) -> None:
    for op in msg.ops:
        if op.code in UNSUPPORTED_OPS:
            raise CommandError(RC_PARAMETER)
        if op.code not in _READ_OPS and not msg.info2 & INFO2_WRITE:
            raise CommandError(RC_PARAMETER)


def _dispatch(
    store: Store, namespace: Namespace, msg: Message, digest: bytes, now: int
) -> bytes:
    record = namespace.live(digest, now)
    if not msg.info2 & INFO2_WRITE:
        return _read(namespace, msg, record, now)
    if msg.info2 & INFO2_DELETE:
        return _delete(namespace, msg, record)
    return _write(store, namespace, msg, record, now)


def _read(namespace: Namespace, msg: Message, record: Record | None, now: int) -> bytes:
    if record is None:
        raise CommandError(RC_NOT_FOUND)
    _read_touch(msg.record_ttl, record, now)
    generation, void_time = record.generation, record.void_time
    if msg.info1 & INFO1_NOBINDATA:
        return encode_message(RC_OK, generation, void_time)

    if msg.info1 & INFO1_GET_ALL or not msg.ops:
        ops = record.encoded_bins()
        return encode_message(
            RC_OK, generation, void_time, ops=ops, n_ops=len(record.bins)
        )
    results = _run_ops(record.bins, msg)
    return _answer(generation, void_time, results)


def _read_touch(percent: int, record: Record, now: int) -> None:
    # 0 asks for the namespace default, which is off here as on a default
    # server; 0xFFFFFFFF (-1) means never.
    if not 1 <= percent <= 100 or not record.void_time or not record.ttl:
        return
    if record.void_time - now <= record.ttl * percent / 100:
        record.void_time = now + record.ttl


def _delete(namespace: Namespace, msg: Message, record: Record | None) -> bytes:
    if record is None:
        raise CommandError(RC_NOT_FOUND)
    _check_generation(msg, record)
    del namespace.records[record.digest]
    return encode_message(RC_OK)


def _write(
    store: Store, namespace: Namespace, msg: Message, record: Record | None, now: int
) -> bytes:
    void_time, ttl = _void_time(namespace, msg.record_ttl, record, now)
    _check_existence(msg, record)
    _check_generation(msg, record)
    replace = msg.info3 & (INFO3_CREATE_OR_REPLACE | INFO3_REPLACE_ONLY)
    bins = {} if replace or record is None else dict(record.bins)

    results = _run_ops(bins, msg)
    if not bins:
        return _write_empty(namespace, record)
    _check_size(namespace, msg, record, bins)

    stored = record or _new_record(namespace, msg)
    _store(stored, msg, bins, store.now_ns())
    stored.void_time, stored.ttl = void_time, ttl
    return _answer(stored.generation, void_time, results)


def _void_time(
    namespace: Namespace, ttl: int, record: Record | None, now: int
) -> tuple[int, int]:
    if ttl == TTL_NEVER:
        return 0, 0
    if ttl == TTL_KEEP and record is not None:
        return record.void_time, record.ttl
    if ttl in (0, TTL_KEEP):
        ttl = namespace.config.default_ttl
        return (now + ttl, ttl) if ttl else (0, 0)
    if ttl > MAX_TTL:
        raise CommandError(RC_PARAMETER)
    if not namespace.config.ttl_allowed:
        raise CommandError(RC_FORBIDDEN)
    return now + ttl, ttl


def _check_existence(msg: Message, record: Record | None) -> None:
    must_exist = msg.info3 & (INFO3_UPDATE_ONLY | INFO3_REPLACE_ONLY)
    if record is None and (must_exist or any(op.code == OP_TOUCH for op in msg.ops)):
        raise CommandError(RC_NOT_FOUND)
    if record is not None and msg.info2 & INFO2_CREATE_ONLY:
        raise CommandError(RC_EXISTS)


def _check_generation(msg: Message, record: Record | None) -> None:
    stored = record.generation if record is not None else 0
    if msg.info2 & INFO2_GENERATION and msg.generation != stored:
        raise CommandError(RC_GENERATION)
    if msg.info2 & INFO2_GENERATION_GT and msg.generation <= stored:
        raise CommandError(RC_GENERATION)


def _check_size(
    namespace: Namespace,
    msg: Message,
    record: Record | None,
    bins: dict[bytes, Particle],
) -> None:
    key = msg.fields.get(FIELD_KEY, record.key if record else None)
    if record_size(bins, key) > namespace.config.max_record_size:
        raise CommandError(RC_TOO_BIG)


def _write_empty(namespace: Namespace, record: Record | None) -> bytes:
    if record is None:
        raise CommandError(RC_NOT_FOUND)
    del namespace.records[record.digest]
    return encode_message(RC_OK)


def _new_record(namespace: Namespace, msg: Message) -> Record:
    digest = msg.fields[FIELD_DIGEST]
    record = Record(digest, msg.fields.get(FIELD_SET, b""))
    namespace.insert(record)
    return record


def _store(record: Record, msg: Message, bins: dict[bytes, Particle], lut: int) -> None:
    record.replace_bins(bins)
    record.generation = record.generation % 0xFFFF + 1
    record.lut = lut
    if FIELD_KEY in msg.fields:
        record.key = msg.fields[FIELD_KEY]


def _answer(generation: int, void_time: int, results: list[bytes]) -> bytes:
    return encode_message(
        RC_OK, generation, void_time, ops=b"".join(results), n_ops=len(results)
    )


def _run_ops(bins: dict[bytes, Particle], msg: Message) -> list[bytes]:
    respond_all = bool(msg.info2 & INFO2_RESPOND_ALL_OPS)
    results: list[bytes] = []
    for op in msg.ops:
        if len(op.name) > MAX_BIN_NAME:
            raise CommandError(RC_BIN_NAME)
        if op.code == OP_READ:
            results += _read_op(bins, op, respond_all)
            continue
        particle = _OP_HANDLERS[op.code](bins, op)
        if respond_all or op.code == OP_CDT_READ:
            results.append(encode_op(particle[0], op.name, particle[1]))
    return results


def _read_op(bins: dict[bytes, Particle], op: Op, respond_all: bool) -> list[bytes]:
    if not op.name:
        return [encode_op(p[0], name, p[1]) for name, p in bins.items()]
    particle = bins.get(op.name)
    if particle is None:
        return [encode_op(PARTICLE_NIL, op.name, b"")] if respond_all else []
    return [encode_op(particle[0], op.name, particle[1])]


_NIL: Particle = (PARTICLE_NIL, b"")


def _write_op(bins: dict[bytes, Particle], op: Op) -> Particle:
    if op.ptype == PARTICLE_NIL:
        bins.pop(op.name, None)
    else:
        bins[op.name] = (op.ptype, bytes(op.value))
    return _NIL


def _matching_bin(
    bins: dict[bytes, Particle], op: Op, allowed: tuple[int, int], rc: int
) -> Particle | None:
    # The op's value type must be one the op takes (else ``rc``) and must
    # equal the type of the bin it changes, when that bin exists.
    if op.ptype not in allowed:
        raise CommandError(rc)
    current = bins.get(op.name)
    if current is not None and current[0] != op.ptype:
        raise CommandError(RC_INCOMPATIBLE)
    return current


def _incr_op(bins: dict[bytes, Particle], op: Op) -> Particle:
    numbers = (PARTICLE_INTEGER, PARTICLE_FLOAT)
    current = _matching_bin(bins, op, numbers, RC_PARAMETER)
    if op.ptype == PARTICLE_FLOAT:
        old = _DOUBLE.unpack(current[1])[0] if current else 0.0
        bins[op.name] = (op.ptype, _DOUBLE.pack(old + _DOUBLE.unpack(op.value)[0]))
        return _NIL

    old_int = _INT.unpack(current[1])[0] if current else 0
    total = old_int + _INT.unpack(op.value.rjust(8, b"\0"))[0]
    total = (total + (1 << 63)) % (1 << 64) - (1 << 63)  # wraps like int64
    bins[op.name] = (op.ptype, _INT.pack(total))
    return _NIL


def _concat_op(bins: dict[bytes, Particle], op: Op) -> Particle:
    texts = (PARTICLE_STRING, PARTICLE_BLOB)
    current = _matching_bin(bins, op, texts, RC_INCOMPATIBLE)
    old, value = current[1] if current else b"", bytes(op.value)
    joined = old + value if op.code == OP_APPEND else value + old
    bins[op.name] = (op.ptype, joined)
    return _NIL


def _touch_op(bins: dict[bytes, Particle], op: Op) -> Particle:
    return _NIL


def _delete_op(bins: dict[bytes, Particle], op: Op) -> Particle:
    bins.clear()
    return _NIL


def _cdt_op(bins: dict[bytes, Particle], op: Op) -> Particle:
    try:
        result = map_op(bins, op.name, bytes(op.value), op.code == OP_CDT_MODIFY)
    except CdtError as err:
        logger.debug("map op refused: %s", err)
        raise CommandError(err.rc) from err
    return particles.encode(result)


_OP_HANDLERS: dict[int, Callable[[dict[bytes, Particle], Op], Particle]] = {
    OP_WRITE: _write_op,
    OP_INCR: _incr_op,
    OP_APPEND: _concat_op,
    OP_PREPEND: _concat_op,
    OP_TOUCH: _touch_op,
    OP_DELETE: _delete_op,
    OP_CDT_READ: _cdt_op,
    OP_CDT_MODIFY: _cdt_op,
}
