"""Framing and the AS_MSG layout: proto header, message header, fields, ops.

Every frame starts with an 8-byte big-endian word: version (2), message type
and body size. A data message (type 3) body is a 22-byte header followed by
its fields and its ops. Every integer is big-endian.
"""

from __future__ import annotations

import logging
import struct
from typing import NamedTuple

logger = logging.getLogger(__name__)

PROTO_VERSION = 2
TYPE_INFO = 1
TYPE_ADMIN = 2
TYPE_MESSAGE = 3
TYPE_COMPRESSED = 4
MAX_FRAME_SIZE = 128 * 1024 * 1024

INFO1_READ = 0x01
INFO1_GET_ALL = 0x02
INFO1_NOBINDATA = 0x20
INFO2_WRITE = 0x01
INFO2_DELETE = 0x02
INFO2_GENERATION = 0x04
INFO2_GENERATION_GT = 0x08
INFO2_CREATE_ONLY = 0x20
INFO2_RESPOND_ALL_OPS = 0x80
INFO3_LAST = 0x01
INFO3_PARTITION_DONE = 0x04
INFO3_UPDATE_ONLY = 0x08
INFO3_CREATE_OR_REPLACE = 0x10
INFO3_REPLACE_ONLY = 0x20

FIELD_NAMESPACE = 0
FIELD_SET = 1
FIELD_KEY = 2
FIELD_DIGEST = 4
FIELD_PARTITIONS = 11
FIELD_DIGEST_ARRAY = 12
FIELD_MAX_RECORDS = 13
FIELD_INDEX_NAME = 21
FIELD_INDEX_RANGE = 22
FIELD_INDEX_TYPE = 26
FIELD_BATCH = 41
FIELD_FILTER_EXP = 43

OP_READ = 1
OP_WRITE = 2
OP_CDT_READ = 3
OP_CDT_MODIFY = 4
OP_INCR = 5
OP_APPEND = 9
OP_PREPEND = 10
OP_TOUCH = 11
OP_DELETE = 14
#: Op codes a real server knows but this one does not implement.
UNSUPPORTED_OPS = frozenset({7, 8, 12, 13, 15, 16, 17, 18, 19})

PARTICLE_NIL = 0
PARTICLE_INTEGER = 1
PARTICLE_FLOAT = 2
PARTICLE_STRING = 3
PARTICLE_BLOB = 4
PARTICLE_BOOL = 17
PARTICLE_MAP = 19
PARTICLE_LIST = 20

PROTO = struct.Struct(">Q")
HEADER = struct.Struct(">BBBBBBIIIHH")
_FIELD = struct.Struct(">IB")
_OP = struct.Struct(">IBBBB")
HEADER_SIZE = 22


class ProtocolError(ValueError):
    """Raised for bytes that break the protocol; the connection is closed."""


class Op(NamedTuple):
    """One operation of a data message; ``name`` is the raw bin name."""

    code: int
    ptype: int
    name: bytes
    value: bytes


class Message:
    """A parsed data message: header values, fields by type, ops in order."""

    __slots__ = (
        "fields",
        "generation",
        "info1",
        "info2",
        "info3",
        "ops",
        "record_ttl",
    )

    def __init__(
        self,
        header: tuple[int, ...],
        fields: dict[int, bytes],
        ops: list[Op],
    ) -> None:
        self.info1, self.info2, self.info3 = header[1], header[2], header[3]
        self.generation, self.record_ttl = header[6], header[7]
        self.fields = fields
        self.ops = ops


def split_proto(word: bytes) -> tuple[int, int, int]:
    """Return (version, type, size) of an 8-byte proto header.

    :param word: the 8 header bytes.
    """
    value = PROTO.unpack(word)[0]
    return value >> 56, (value >> 48) & 0xFF, value & 0xFFFFFFFFFFFF


def frame(msg_type: int, body: bytes) -> bytes:
    """Prefix ``body`` with a proto header of the given type.

    :param msg_type: one of the ``TYPE_*`` constants.
    :param body: the message body.
    """
    word = (PROTO_VERSION << 56) | (msg_type << 48) | len(body)
    return PROTO.pack(word) + body


def parse_message(body: bytes) -> Message:
    """Parse one data message filling ``body``.

    :param body: the frame body after the proto header.
    :raises ProtocolError: if the message is truncated or malformed.
    """
    try:
        header = HEADER.unpack_from(body, 0)
        if header[0] != HEADER_SIZE:
            raise ProtocolError(f"message header size {header[0]}, expected 22")
        fields, pos = _parse_fields(body, HEADER_SIZE, header[9])
        ops, pos = _parse_ops(body, pos, header[10])
    except struct.error as err:
        raise ProtocolError("truncated data message") from err
    if pos != len(body):
        raise ProtocolError(f"{len(body) - pos} stray bytes after the last op")
    return Message(header, fields, ops)


def _parse_fields(body: bytes, pos: int, count: int) -> tuple[dict[int, bytes], int]:
    fields = {}
    for _ in range(count):
        size, ftype = _FIELD.unpack_from(body, pos)
        end = pos + 4 + size
        if size < 1 or end > len(body):
            raise ProtocolError(f"field {ftype} runs past the end of the message")
        fields[ftype] = body[pos + 5 : end]
        pos = end
    return fields, pos


def _parse_ops(body: bytes, pos: int, count: int) -> tuple[list[Op], int]:
    ops = []
    for _ in range(count):
        size, code, ptype, _flags, name_len = _OP.unpack_from(body, pos)
        end = pos + 4 + size
        if size < 4 + name_len or end > len(body):
            raise ProtocolError(f"op {code} runs past the end of the message")
        name_end = pos + 8 + name_len
        ops.append(Op(code, ptype, body[pos + 8 : name_end], body[name_end:end]))
        pos = end
    return ops, pos


def encode_message(
    result: int,
    generation: int = 0,
    void_time: int = 0,
    *,
    info3: int = 0,
    fields: bytes = b"",
    n_fields: int = 0,
    ops: bytes = b"",
    n_ops: int = 0,
) -> bytes:
    """Build a response message body (no proto header).

    :param result: the result code.
    :param generation: the record generation (a partition id in
        partition-done messages).
    :param void_time: the record's void time, 0 for never.
    :param info3: info3 flags, e.g. :data:`INFO3_LAST`.
    :param fields: encoded fields, see :func:`encode_field`.
    :param n_fields: how many fields ``fields`` holds.
    :param ops: encoded ops, see :func:`encode_op`.
    :param n_ops: how many ops ``ops`` holds.
    """
    header = HEADER.pack(
        HEADER_SIZE, 0, 0, info3, 0, result, generation, void_time, 0, n_fields, n_ops
    )
    return header + fields + ops


def encode_field(ftype: int, data: bytes) -> bytes:
    """Encode one field.

    :param ftype: the field type.
    :param data: the field data.
    """
    return _FIELD.pack(len(data) + 1, ftype) + data


def encode_op(ptype: int, name: bytes, value: bytes, code: int = OP_READ) -> bytes:
    """Encode one op, by default a READ result carrying a bin.

    :param ptype: the particle type of ``value``.
    :param name: the raw bin name.
    :param value: the particle bytes.
    :param code: the op code.
    """
    return (
        _OP.pack(4 + len(name) + len(value), code, ptype, 0, len(name)) + name + value
    )
