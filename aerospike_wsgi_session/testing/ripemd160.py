"""Record key digests: RIPEMD-160, with a pure-Python fallback.

``hashlib`` offers RIPEMD-160 only when OpenSSL's legacy provider is loaded;
some OpenSSL 3 builds lack it, so a small implementation of the published
algorithm stands in. It is slow, but the server hashes only keys.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from typing import Any

logger = logging.getLogger(__name__)

_MASK = 0xFFFFFFFF
# Which message word each of the 80 steps reads, one hex digit per step.
_LEFT_WORDS = (
    "0123456789abcdef74d1a6f3c0952eb83ae49f812706db5c19ba08c4d37fe56240597c2ae138b6fd"
)
_RIGHT_WORDS = (
    "5e7092b4d6f81a3c6b370d5aef8c4912f5137e69b8c2a04d86413bf05c2d97aecfa4158762de039b"
)
_LEFT_SHIFTS = (
    (11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8),
    (7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12),
    (11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5),
    (11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12),
    (9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6),
)
_RIGHT_SHIFTS = (
    (8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6),
    (9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11),
    (9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5),
    (15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8),
    (8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11),
)
_LEFT_K = (0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E)
_RIGHT_K = (0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000)
_INITIAL = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)

KEY_INTEGER = 1
KEY_FLOAT = 2
KEY_STRING = 3
KEY_BLOB = 4


def _rol(value: int, count: int) -> int:
    return ((value << count) | (value >> (32 - count))) & _MASK


def _mix(round_no: int, x: int, y: int, z: int) -> int:
    if round_no == 0:
        return x ^ y ^ z
    if round_no == 1:
        return (x & y) | (~x & z)
    if round_no == 2:
        return (x | (~y & _MASK)) ^ z
    if round_no == 3:
        return (x & z) | (y & ~z)
    return x ^ (y | (~z & _MASK))


def _line(
    state: tuple[int, ...], words: tuple[int, ...], order: str, left: bool
) -> list[int]:
    a, b, c, d, e = state
    shifts, constants = (_LEFT_SHIFTS, _LEFT_K) if left else (_RIGHT_SHIFTS, _RIGHT_K)
    for step in range(80):
        round_no, index = divmod(step, 16)
        mixed = _mix(round_no if left else 4 - round_no, b, c, d)
        word = words[int(order[step], 16)]
        total = (a + mixed + word + constants[round_no]) & _MASK
        a, e, d, c = e, d, _rol(c, 10), b
        b = (_rol(total, shifts[round_no][index]) + a) & _MASK
    return [a, b, c, d, e]


def _compress(state: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    words = struct.unpack("<16I", block)
    al, bl, cl, dl, el = _line(state, words, _LEFT_WORDS, True)
    ar, br, cr, dr, er = _line(state, words, _RIGHT_WORDS, False)
    h0, h1, h2, h3, h4 = state
    return (
        (h1 + cl + dr) & _MASK,
        (h2 + dl + er) & _MASK,
        (h3 + el + ar) & _MASK,
        (h4 + al + br) & _MASK,
        (h0 + bl + cr) & _MASK,
    )


def ripemd160_pure(data: bytes) -> bytes:
    """Return the RIPEMD-160 digest of ``data``, computed in Python.

    :param data: the bytes to hash.
    """
    padded = data + b"\x80" + b"\0" * ((55 - len(data)) % 64)
    padded += struct.pack("<Q", (len(data) * 8) & 0xFFFFFFFFFFFFFFFF)
    state: tuple[int, ...] = _INITIAL
    for start in range(0, len(padded), 64):
        state = _compress(state, padded[start : start + 64])
    return struct.pack("<5I", *state)


def ripemd160(data: bytes) -> bytes:
    """Return the RIPEMD-160 digest of ``data``, by OpenSSL when it can.

    :param data: the bytes to hash.
    """
    try:
        return hashlib.new("ripemd160", data).digest()
    except ValueError:
        return ripemd160_pure(data)


def key_digest(set_name: str | bytes, key_field: bytes) -> bytes:
    """Return the record digest of a key, as the client computes it.

    :param set_name: the set name (may be empty).
    :param key_field: the key as on the wire: type byte then key bytes.
    """
    raw_set = set_name.encode() if isinstance(set_name, str) else set_name
    return ripemd160(raw_set + key_field)


def key_field(key: Any) -> bytes:
    """Encode a user key as the wire does: a type byte, then its bytes.

    :param key: an ``int``, ``str``, ``bytes``/``bytearray`` or ``float``.
    :raises TypeError: for any other type.
    """
    if isinstance(key, bool) or not isinstance(
        key, int | str | bytes | bytearray | float
    ):
        raise TypeError(f"unsupported key type {type(key).__name__}")
    if isinstance(key, int):
        return bytes((KEY_INTEGER,)) + struct.pack(">q", key)
    if isinstance(key, str):
        return bytes((KEY_STRING,)) + key.encode()
    if isinstance(key, float):
        return bytes((KEY_FLOAT,)) + struct.pack(">d", key)
    return bytes((KEY_BLOB,)) + bytes(key)
