"""The Aerospike flavour of msgpack, as used by list and map bins and CDT ops.

It differs from plain msgpack in three ways: a str item's payload starts with
a particle-type byte (3 for text, 4 or a language type for bytes), ordered
maps and lists open with an ext element carrying their order flags, and ext
type 0xff marks the wildcard and infinity values of range operations.
"""

from __future__ import annotations

import logging
import struct
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

STRING_TYPE = 3
BLOB_TYPE = 4

_DOUBLE = struct.Struct(">d")


class Ext(NamedTuple):
    """A msgpack ext item the server only carries around."""

    code: int
    data: bytes


class TypedBlob(NamedTuple):
    """Bytes tagged with a language particle type other than plain BLOB."""

    ptype: int
    data: bytes


class CdtMap(dict[Any, Any]):
    """A map that remembers its Aerospike order flags (0 = unordered)."""

    flags: int = 0


class CdtList(list[Any]):
    """A list that remembers its Aerospike order flags (0 = unordered)."""

    flags: int = 0


class MsgpackError(ValueError):
    """Raised for bytes that are not valid Aerospike msgpack."""


def packb(value: Any) -> bytes:
    """Encode ``value`` in the Aerospike msgpack flavour.

    :param value: None, bool, int, float, str, bytes, :class:`TypedBlob`,
        :class:`Ext`, list or dict, nested freely.
    """
    out = bytearray()
    _pack(value, out)
    return bytes(out)


def unpackb(data: bytes) -> Any:
    """Decode one Aerospike msgpack item that fills ``data`` exactly.

    :param data: the encoded bytes.
    :raises MsgpackError: if the bytes are malformed or have trailing data.
    """
    value, end = unpack_from(data, 0)
    if end != len(data):
        raise MsgpackError(f"{len(data) - end} trailing bytes after msgpack item")
    return value


def unpack_from(data: bytes, pos: int) -> tuple[Any, int]:
    """Decode one item at ``pos`` and return it with the position after it.

    :param data: the encoded bytes.
    :param pos: where the item starts.
    :raises MsgpackError: if the bytes are malformed.
    """
    try:
        return _unpack(data, pos)
    except (IndexError, struct.error, UnicodeDecodeError) as err:
        raise MsgpackError(f"malformed msgpack at offset {pos}") from err


def _pack(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0xC0)
    elif isinstance(value, bool):
        out.append(0xC3 if value else 0xC2)
    elif isinstance(value, int):
        _pack_int(value, out)
    elif isinstance(value, float):
        out.append(0xCB)
        out += _DOUBLE.pack(value)
    elif isinstance(value, str):
        _pack_str(STRING_TYPE, value.encode(), out)
    elif isinstance(value, bytes | bytearray):
        _pack_str(BLOB_TYPE, bytes(value), out)
    elif isinstance(value, TypedBlob):
        _pack_str(value.ptype, value.data, out)
    elif isinstance(value, Ext):
        _pack_ext(value, out)
    elif isinstance(value, list | tuple):
        _pack_list(value, out)
    elif isinstance(value, dict):
        _pack_map(value, out)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as msgpack")


def _pack_int(value: int, out: bytearray) -> None:
    if 0 <= value < 0x80 or -32 <= value < 0:
        out += struct.pack(">b", value) if value < 0 else bytes((value,))
    elif value >= 0:
        for code, fmt, limit in ((0xCC, ">B", 8), (0xCD, ">H", 16), (0xCE, ">I", 32)):
            if value < 1 << limit:
                out.append(code)
                out += struct.pack(fmt, value)
                return
        out.append(0xCF)
        out += struct.pack(">Q", value)
    else:
        for code, fmt, limit in ((0xD0, ">b", 7), (0xD1, ">h", 15), (0xD2, ">i", 31)):
            if value >= -(1 << limit):
                out.append(code)
                out += struct.pack(fmt, value)
                return
        out.append(0xD3)
        out += struct.pack(">q", value)


def _pack_str(ptype: int, payload: bytes, out: bytearray) -> None:
    size = len(payload) + 1
    if size < 32:
        out.append(0xA0 | size)
    elif size < 0x100:
        out += bytes((0xD9, size))
    elif size < 0x10000:
        out += b"\xda" + struct.pack(">H", size)
    else:
        out += b"\xdb" + struct.pack(">I", size)
    out.append(ptype)
    out += payload


def _pack_ext(value: Ext, out: bytearray) -> None:
    size = len(value.data)
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    if size in fixed:
        out.append(fixed[size])
    elif size < 0x100:
        out += bytes((0xC7, size))
    else:
        out += b"\xc9" + struct.pack(">I", size)
    out.append(value.code & 0xFF)
    out += value.data


def _pack_header(count: int, fix: int, code16: int, out: bytearray) -> None:
    if count < 16:
        out.append(fix | count)
    elif count < 0x10000:
        out.append(code16)
        out += struct.pack(">H", count)
    else:
        out.append(code16 + 1)
        out += struct.pack(">I", count)


def _pack_list(value: list[Any] | tuple[Any, ...], out: bytearray) -> None:
    flags = getattr(value, "flags", 0)
    _pack_header(len(value) + (1 if flags else 0), 0x90, 0xDC, out)
    if flags:
        _pack_ext(Ext(0, bytes((flags,))), out)
    for item in value:
        _pack(item, out)


def _pack_map(value: dict[Any, Any], out: bytearray) -> None:
    flags = getattr(value, "flags", 0)
    _pack_header(len(value) + (1 if flags else 0), 0x80, 0xDE, out)
    items = list(value.items())
    if flags:
        _pack_ext(Ext(0, bytes((flags,))), out)
        out.append(0xC0)
        items.sort(key=lambda item: sort_key(item[0]))
    for key, item in items:
        _pack(key, out)
        _pack(item, out)


def sort_key(value: Any) -> tuple[int, Any]:
    """Return a key ordering values the way Aerospike orders map keys.

    The type order is nil, bool, integer, string, list, map, bytes, float.

    :param value: a decoded msgpack value.
    """
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int):
        return (2, value)
    if isinstance(value, str):
        return (3, value.encode())
    if isinstance(value, list):
        return (4, [sort_key(item) for item in value])
    if isinstance(value, dict):
        return (5, sorted(sort_key(key) for key in value))
    if isinstance(value, bytes | TypedBlob):
        return (6, bytes(value) if isinstance(value, bytes) else value.data)
    if isinstance(value, float):
        return (7, value)
    return (9, 0)


_FIXED = {
    0xCC: (1, ">B"), 0xCD: (2, ">H"), 0xCE: (4, ">I"), 0xCF: (8, ">Q"),
    0xD0: (1, ">b"), 0xD1: (2, ">h"), 0xD2: (4, ">i"), 0xD3: (8, ">q"),
    0xCA: (4, ">f"), 0xCB: (8, ">d"),
}  # fmt: skip
_SIZED = {0xD9: (1, ">B"), 0xDA: (2, ">H"), 0xDB: (4, ">I")}
_BIN = {0xC4: (1, ">B"), 0xC5: (2, ">H"), 0xC6: (4, ">I")}
_EXT = {0xC7: (1, ">B"), 0xC8: (2, ">H"), 0xC9: (4, ">I")}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}


def _unpack(data: bytes, pos: int) -> tuple[Any, int]:
    code = data[pos]
    pos += 1
    if code < 0x80:
        return code, pos
    if code >= 0xE0:
        return code - 0x100, pos
    if 0xA0 <= code <= 0xBF:
        return _str(data, pos, code & 0x1F)
    if 0x90 <= code <= 0x9F:
        return _list(data, pos, code & 0x0F)
    if 0x80 <= code <= 0x8F:
        return _map(data, pos, code & 0x0F)
    return _unpack_coded(code, data, pos)


def _unpack_coded(code: int, data: bytes, pos: int) -> tuple[Any, int]:
    simple = {0xC0: None, 0xC2: False, 0xC3: True}
    if code in simple:
        return simple[code], pos
    if code in _FIXED:
        size, fmt = _FIXED[code]
        return struct.unpack_from(fmt, data, pos)[0], pos + size
    if code in _FIXEXT:
        size = _FIXEXT[code]
        return Ext(data[pos], bytes(data[pos + 1 : pos + 1 + size])), pos + 1 + size
    return _unpack_sized(code, data, pos)


def _unpack_sized(code: int, data: bytes, pos: int) -> tuple[Any, int]:
    table = _SIZED | _BIN | _EXT | {0xDC: (2, ">H"), 0xDD: (4, ">I")}
    table |= {0xDE: (2, ">H"), 0xDF: (4, ">I")}
    if code not in table:
        raise MsgpackError(f"unsupported msgpack type byte 0x{code:02x}")
    width, fmt = table[code]
    count = struct.unpack_from(fmt, data, pos)[0]
    pos += width
    if code in _SIZED:
        return _str(data, pos, count)
    if code in _BIN:
        return bytes(data[pos : pos + count]), pos + count
    if code in _EXT:
        end = pos + 1 + count
        return Ext(data[pos], bytes(data[pos + 1 : end])), end
    return (_list if code in (0xDC, 0xDD) else _map)(data, pos, count)


def _str(data: bytes, pos: int, size: int) -> tuple[Any, int]:
    end = pos + size
    if end > len(data):
        raise MsgpackError("str item runs past the end of the data")
    if size == 0:
        return "", end
    ptype, payload = data[pos], bytes(data[pos + 1 : end])
    if ptype == STRING_TYPE:
        return payload.decode(), end
    if ptype == BLOB_TYPE:
        return payload, end
    return TypedBlob(ptype, payload), end


def _list(data: bytes, pos: int, count: int) -> tuple[Any, int]:
    result = CdtList()
    for index in range(count):
        item, pos = _unpack(data, pos)
        if index == 0 and isinstance(item, Ext):
            result.flags = item.data[0] if item.data else 0
            continue
        result.append(item)
    return result, pos


def _map(data: bytes, pos: int, count: int) -> tuple[Any, int]:
    result = CdtMap()
    for index in range(count):
        key, pos = _unpack(data, pos)
        value, pos = _unpack(data, pos)
        if index == 0 and isinstance(key, Ext):
            result.flags = key.data[0] if key.data else 0
            continue
        result[_hashable(key)] = value
    return result, pos


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(item) for item in key)
    return key
