"""Turn session data into Aerospike bins and back.

A mapper decides how the session dictionary is laid out in a record. The
default, :class:`JSONMapper`, keeps one map bin whose entries are the session
keys, each holding its value as JSON text. Types that JSON cannot hold are
written as tag objects, so they come back as the same type they went in as.

The tagging scheme, in full:

* A JSON object with a key that starts with a single ``$`` is a *tag object*:
  it has exactly that one key, naming the type, and the payload as its value,
  for example ``{"$dt": "2024-05-01T12:00:00+00:00"}``.
* A user dictionary key that starts with ``$`` is written with one more
  ``$`` in front (``"$x"`` becomes ``"$$x"``) and loses it again on reading,
  so no user dictionary is ever mistaken for a tag object.
* Sets are written sorted by the JSON text of their members, so that equal
  sets always give the same text.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from .exc import DecodeError, UnencodableValueError

logger = logging.getLogger(__name__)

# Exact types only: a subclass (an IntEnum, a str Enum) would come back as its
# base type, which is not the faithful round trip this module promises.
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})

_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


class Mapper(Protocol):
    """What the store needs from a mapper; implement it for a custom layout.

    The store writes only the bins whose value changed, and removes the bins
    the new data no longer has; the bin names ``_session``, ``_created`` and
    ``_user`` are the store's own and refused. Concurrent requests keep each
    other's changes only per bin: with one bin per session key that is per
    key, but a mapper that puts the whole session in one bin lets the last
    save of two concurrent requests win the whole session. The default
    :class:`JSONMapper` is entry-wise (``entrywise = True``): the store
    writes single map entries, and keeps every key apart.

    An entry-wise mapper may also decode one value at a time, so that a
    request decodes only the keys it reads: it then has ``entries(bins)``,
    the stored form of each session key (raising ``DecodeError`` for bins it
    did not write), and ``decode_entry(key, stored)``, one value.
    """

    def to_record(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return the bins that hold *data*.

        :param data: the session dictionary.
        :raises UnencodableValueError: a value cannot be stored.
        """
        ...

    def from_record(self, bins: Mapping[str, Any]) -> dict[str, Any]:
        """Return the session dictionary held in *bins*.

        :param bins: the bins of the record, as the client returns them.
        :raises DecodeError: the record is not one this mapper wrote.
        """
        ...


class _Reject(Exception):
    """A value deep inside a session value cannot be encoded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


def _located(reason: str, location: str) -> _Reject:
    """Return a :class:`_Reject` for *reason* at *location* inside a value."""
    reject = _Reject(reason)
    reject.path.append(location)
    return reject


def _encode_float(value: float) -> float:
    """Return *value*, refusing NaN and the infinities."""
    if not math.isfinite(value):
        raise _Reject(f"{value!r} has no JSON form and never equals itself")
    return value


def _encode_list(items: Any) -> list[Any]:
    """Return the JSON-ready form of a list or the members of a tuple."""
    encoded = []
    for index, item in enumerate(items):
        try:
            plain = type(item) in _PLAIN_TYPES
            encoded.append(item if plain else _encode(item))
        except _Reject as reject:
            reject.path.append(f"[{index}]")
            raise
    return encoded


def _encode_dict(value: dict[Any, Any]) -> dict[str, Any]:
    """Return the JSON-ready form of a dictionary, escaping ``$`` keys."""
    encoded = {}
    for key, item in value.items():
        if type(key) is not str:
            raise _located(f"dictionary key {key!r} is not a str", f"[{key!r}]")
        try:
            plain = type(item) in _PLAIN_TYPES
            item = item if plain else _encode(item)
        except _Reject as reject:
            reject.path.append(f"[{key!r}]")
            raise
        encoded["$" + key if key[:1] == "$" else key] = item
    return encoded


def _encode_set(value: set[Any] | frozenset[Any]) -> list[Any]:
    """Return the members of a set, JSON-ready, in a fixed order."""
    try:
        members = _encode_list(value)
    except _Reject as reject:
        reject.path[-1] = "{member}"
        raise
    return sorted(members, key=_ENCODER.encode)


def _encode_decimal(value: Decimal) -> str:
    """Return the text of a finite :class:`~decimal.Decimal`."""
    if not value.is_finite():
        raise _Reject(f"{value!r} is not finite")
    return str(value)


def _encode_time(value: time) -> str:
    """Return the ISO text of a :class:`~datetime.time`, refusing lost offsets."""
    if value.tzinfo is not None and value.utcoffset() is None:
        raise _Reject(f"the timezone of {value!r} has no fixed offset")
    return value.isoformat()


def _encode_bytes(value: bytes) -> str:
    """Return *value* as standard base64 text."""
    return base64.b64encode(value).decode("ascii")


_TAGGED_ENCODERS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    tuple: ("$t", _encode_list),
    set: ("$s", _encode_set),
    frozenset: ("$fs", _encode_set),
    bytes: ("$b", _encode_bytes),
    datetime: ("$dt", datetime.isoformat),
    date: ("$d", date.isoformat),
    time: ("$tm", _encode_time),
    Decimal: ("$dec", _encode_decimal),
    UUID: ("$u", str),
}


def _encode(value: Any) -> Any:
    """Return the JSON-ready form of any supported value."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if kind is float:
        return _encode_float(value)
    if kind is list:
        return _encode_list(value)
    if kind is dict:
        return _encode_dict(value)

    tagged = _TAGGED_ENCODERS.get(kind)
    if tagged is None:
        raise _Reject(f"values of type {kind.__qualname__} are not supported")
    tag, encode_payload = tagged
    return {tag: encode_payload(value)}


def _decode_bytes(text: str) -> bytes:
    """Return the bytes of standard base64 *text*."""
    return base64.b64decode(text, validate=True)


_TAGGED_DECODERS: dict[str, tuple[type, Callable[[Any], Any]]] = {
    "$t": (list, tuple),
    "$s": (list, set),
    "$fs": (list, frozenset),
    "$b": (str, _decode_bytes),
    "$dt": (str, datetime.fromisoformat),
    "$d": (str, date.fromisoformat),
    "$tm": (str, time.fromisoformat),
    "$dec": (str, Decimal),
    "$u": (str, UUID),
}

_BAD_PAYLOAD_ERRORS = (ValueError, TypeError, ArithmeticError, binascii.Error)


def _decode_tag(tag: str, payload: Any) -> Any:
    """Return the value a tag object stands for."""
    try:
        payload_type, decode = _TAGGED_DECODERS[tag]
    except KeyError:
        raise DecodeError(f"unknown tag {tag!r}") from None
    if type(payload) is not payload_type:
        raise DecodeError(f"tag {tag!r} holds a {type(payload).__name__}")

    try:
        return decode(payload)
    except _BAD_PAYLOAD_ERRORS as err:
        raise DecodeError(f"malformed {tag!r} payload ({type(err).__name__})") from err


def _revive(obj: dict[str, Any]) -> Any:
    """Turn one decoded JSON object back into a tagged value or a dictionary."""
    if len(obj) == 1:
        ((key, payload),) = obj.items()
        if key[:1] == "$" and key[1:2] != "$":
            return _decode_tag(key, payload)
    if not any(key[:1] == "$" for key in obj):
        return obj

    revived = {}
    for key, item in obj.items():
        if key[:2] != "$$" and key[:1] == "$":
            raise DecodeError(f"tag {key!r} shares its object with other keys")
        revived[key[1:] if key[:1] == "$" else key] = item
    return revived


_PLAIN_DECODER = json.JSONDecoder()
_TAG_DECODER = json.JSONDecoder(object_hook=_revive)


class JSONMapper:
    """The default mapper: one map bin, one JSON text per session key.

    Each entry of the map bin is a session key; its value is the JSON text of
    the session value, so the store can write only the entries that changed.
    Besides JSON's own types, it keeps ``tuple``, ``set``, ``frozenset``,
    ``bytes``, ``datetime`` (naive or aware), ``date``, ``time``, ``Decimal``
    and ``UUID``, nested anywhere. Dictionary order is not kept (keys are
    sorted), and a timezone comes back as a fixed UTC offset. Pickle is never
    used, so a tampered record cannot run code.

    :param bin_name: the name of the map bin, at most 15 characters (the
        Aerospike limit). Default ``"data"``.
    :raises ValueError: *bin_name* is empty or too long.
    """

    #: Each session key is one map entry of its own, so the store may encode
    #: only the keys that changed.
    entrywise = True

    def __init__(self, bin_name: str = "data") -> None:
        if not isinstance(bin_name, str):
            raise TypeError(f"bin_name must be a str, not {type(bin_name).__name__}")
        if not 0 < len(bin_name.encode("utf-8")) <= 15:
            raise ValueError(f"bin_name {bin_name!r} must be 1 to 15 bytes long")
        self.bin_name = bin_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bin_name={self.bin_name!r})"

    def to_record(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``{bin_name: {key: json_text, ...}}`` for the session *data*.

        :param data: the session dictionary; its keys must be ``str``.
        :raises UnencodableValueError: a key is not a ``str``, or a value holds
            something this mapper cannot keep faithfully.
        """
        payload = {}
        for key, value in data.items():
            if type(key) is not str:
                reason = f"session keys must be str, not {type(key).__name__}"
                raise UnencodableValueError(str(key), value, reason)
            payload[key] = self.encode_value(key, value)
        return {self.bin_name: payload}

    def from_record(self, bins: Mapping[str, Any]) -> dict[str, Any]:
        """Return the session dictionary that :meth:`to_record` wrote to *bins*.

        :param bins: the bins of the record.
        :raises DecodeError: the bin is missing or is not a map of JSON texts,
            or a text is invalid; the message names the session key at fault.
        """
        stored = self.entries(bins)
        return {key: self.decode_entry(key, text) for key, text in stored.items()}

    def entries(self, bins: Mapping[str, Any]) -> dict[str, str]:
        """Return the JSON text of each session key in *bins*, not decoded.

        The store uses it with :meth:`decode_entry` to decode a value only
        when the application asks for it.

        :param bins: the bins of the record.
        :raises DecodeError: the bin is missing or is not a map of JSON texts.
        """
        payload = bins.get(self.bin_name) if isinstance(bins, Mapping) else None
        if not isinstance(payload, dict):
            found = type(payload).__name__
            raise DecodeError(f"bin {self.bin_name!r} is not a map (found {found})")
        for key, text in payload.items():
            if type(key) is not str or type(text) is not str:
                raise DecodeError(f"map entry {key!r} is not a str holding a str")
        return payload

    def decode_entry(self, key: str, text: str) -> Any:
        """Return the value of the session key *key*, stored as *text*.

        :raises DecodeError: the text is invalid; the message names *key*.
        """
        try:
            return self.decode_value(text)
        except DecodeError as err:
            raise DecodeError(f"session key {key!r}: {err}") from err

    def encode_value(self, key: str, value: Any) -> str:
        """Return the JSON text of one session value.

        Equal values give the same text, character for character.

        :param key: the session key, named in errors.
        :param value: the value to encode.
        :raises UnencodableValueError: the value cannot be kept faithfully; the
            message says where inside the value, as a path from its top.
        """
        kind = type(value)
        # The commonest values, written as the encoder would write them
        # without paying for its set-up, which costs more than they do.
        if kind is int:
            return int.__repr__(value)
        if kind is bool:
            return "true" if value else "false"
        if value is None:
            return "null"
        try:
            tree = value if kind in _PLAIN_TYPES else _encode(value)
            text = _ENCODER.encode(tree)
        except _Reject as reject:
            where = "".join(reversed(reject.path)) or "the value itself"
            reason = f"at {where}: {reject.reason}"
            raise UnencodableValueError(key, value, reason) from None
        except (ValueError, RecursionError) as err:
            raise UnencodableValueError(key, value, str(err)) from err

        if not text.isascii():
            _check_utf8(key, value, text)
        return text

    def decode_value(self, text: str) -> Any:
        """Return the value whose JSON text :meth:`encode_value` returned.

        :param text: the JSON text.
        :raises DecodeError: the text is not JSON, or holds an unknown or
            malformed tag object.
        """
        # A key that starts with "$" always shows as '"$' in the text, so text
        # without it holds no tag object and decodes with no hook at all.
        decoder = _TAG_DECODER if '"$' in text else _PLAIN_DECODER
        try:
            return _decode(decoder, text)
        except json.JSONDecodeError as err:
            raise DecodeError(f"invalid JSON: {err}") from err
        except (RecursionError, TypeError, ValueError) as err:
            raise DecodeError(f"undecodable value ({type(err).__name__})") from err


def _decode(decoder: json.JSONDecoder, text: str) -> Any:
    """Decode one JSON text, taking the short way for what this mapper wrote.

    :meth:`JSONMapper.encode_value` puts no whitespace around a value, so
    scanning the text from its first character decodes it whole, about
    twice as fast as ``decode``. Any other text, such as one with spaces
    around it or data after it, goes through ``decode``, which judges it.
    """
    try:
        value, end = decoder.raw_decode(text)
    except json.JSONDecodeError:
        end = -1
    return value if end == len(text) else decoder.decode(text)


def _check_utf8(key: str, value: Any, text: str) -> None:
    """Refuse text that UTF-8 cannot hold, such as a lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        reason = "a string holds a lone surrogate, which UTF-8 cannot hold"
        raise UnencodableValueError(key, value, reason) from err
