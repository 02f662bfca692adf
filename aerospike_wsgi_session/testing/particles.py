"""Conversion between bin particles (type byte + bytes) and Python values.

Stored bins stay in wire form, so a get copies bytes out without decoding;
values are decoded only where the server must compute with them.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from . import msgpack
from .wire import (
    PARTICLE_BLOB,
    PARTICLE_BOOL,
    PARTICLE_FLOAT,
    PARTICLE_INTEGER,
    PARTICLE_LIST,
    PARTICLE_MAP,
    PARTICLE_NIL,
    PARTICLE_STRING,
)

logger = logging.getLogger(__name__)

Particle = tuple[int, bytes]

_INT = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")


def decode(ptype: int, data: bytes) -> Any:
    """Return the Python value of a particle.

    :param ptype: the particle type.
    :param data: the particle bytes.
    :raises ValueError: if the bytes do not fit the type.
    """
    if ptype == PARTICLE_INTEGER:
        return _INT.unpack(data.rjust(8, b"\0"))[0]
    if ptype == PARTICLE_STRING:
        return data.decode()
    if ptype in (PARTICLE_MAP, PARTICLE_LIST):
        return msgpack.unpackb(data)
    if ptype == PARTICLE_FLOAT:
        return _DOUBLE.unpack(data)[0]
    if ptype == PARTICLE_BOOL:
        return data != b"\0"
    if ptype == PARTICLE_NIL:
        return None
    if ptype == PARTICLE_BLOB:
        return bytes(data)
    return msgpack.TypedBlob(ptype, bytes(data))


def encode(value: Any) -> Particle:
    """Return the particle (type, bytes) holding a Python value.

    :param value: a value as produced by :func:`decode` or the msgpack codec.
    """
    if value is None:
        return PARTICLE_NIL, b""
    if isinstance(value, bool):
        return PARTICLE_BOOL, b"\1" if value else b"\0"
    if isinstance(value, int):
        return PARTICLE_INTEGER, _INT.pack(value)
    if isinstance(value, float):
        return PARTICLE_FLOAT, _DOUBLE.pack(value)
    if isinstance(value, str):
        return PARTICLE_STRING, value.encode()
    if isinstance(value, bytes):
        return PARTICLE_BLOB, value
    if isinstance(value, msgpack.TypedBlob):
        return value.ptype, value.data
    if isinstance(value, dict):
        return PARTICLE_MAP, msgpack.packb(value)
    return PARTICLE_LIST, msgpack.packb(value)
