"""Map operations (CDT ops on map bins) of the embedded server.

A CDT op's value is a msgpack list ``[command, args...]``. Supported: put,
put items, add/replace (the older write modes), increment, decrement, clear,
set type, size, get and remove by key and by key list, with the return types
NONE, KEY, VALUE, KEY_VALUE, COUNT, EXISTS and the two map forms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import msgpack, particles
from .msgpack import CdtMap
from .particles import Particle
from .wire import PARTICLE_MAP

logger = logging.getLogger(__name__)

RC_PARAMETER = 4
RC_INCOMPATIBLE = 12
RC_ELEMENT_NOT_FOUND = 23
RC_ELEMENT_EXISTS = 24

CREATE_ONLY = 1
UPDATE_ONLY = 2
NO_FAIL = 4
PARTIAL = 8

RETURN_NONE = 0
RETURN_COUNT = 5
RETURN_KEY = 6
RETURN_VALUE = 7
RETURN_KEY_VALUE = 8
RETURN_EXISTS = 13
RETURN_UNORDERED_MAP = 16
RETURN_ORDERED_MAP = 17
RETURN_INVERTED = 0x10000

_CLEAR = 75
_SIZE = 96
_SET_TYPE = 64
_ADDS = {
    65: CREATE_ONLY,
    66: CREATE_ONLY,
    67: 0,
    68: 0,
    69: UPDATE_ONLY,
    70: UPDATE_ONLY,
}
_ITEMS = frozenset({66, 68, 70})
_INCREMENTS = {73: 1, 74: -1}
_REMOVES = {76: False, 81: True}
_GETS = {97: False, 107: True}
_CREATORS = frozenset({*_ADDS, *_INCREMENTS, _SET_TYPE})


class CdtError(Exception):
    """A map op failed with an Aerospike result code.

    :param rc: the result code.
    :param reason: what went wrong, for the server log.
    """

    def __init__(self, rc: int, reason: str) -> None:
        super().__init__(reason)
        self.rc = rc


def map_op(
    bins: dict[bytes, Particle], name: bytes, payload: bytes, modify: bool
) -> Any:
    """Apply one map op to ``bins`` (changed in place) and return its result.

    :param bins: the working bins of the record.
    :param name: the bin the op addresses.
    :param payload: the op's msgpack value.
    :param modify: whether the op came as a CDT modify op.
    :raises CdtError: with the result code the real server answers.
    """
    command, args = _command(payload)
    current = _load(bins.get(name))
    if command in _GETS or command == _SIZE:
        return None if current is None else _read(current, command, args)
    if not modify:
        raise CdtError(RC_PARAMETER, f"map command {command} needs a modify op")

    target = CdtMap() if current is None else current
    result = _modify(target, command, args)
    if current is not None or command in _CREATORS:
        bins[name] = (PARTICLE_MAP, msgpack.packb(target))
    return result


def _command(payload: bytes) -> tuple[int, list[Any]]:
    try:
        request = msgpack.unpackb(payload)
    except msgpack.MsgpackError as err:
        raise CdtError(RC_PARAMETER, "malformed CDT payload") from err
    if not isinstance(request, list) or not request:
        raise CdtError(RC_PARAMETER, "CDT payload is not a command list")
    if not isinstance(request[0], int) or request[0] == 0xFF:
        raise CdtError(RC_PARAMETER, "CDT contexts are not supported")
    return request[0], list(request[1:])


def _load(bin_value: Particle | None) -> CdtMap | None:
    if bin_value is None:
        return None
    if bin_value[0] != PARTICLE_MAP:
        raise CdtError(RC_INCOMPATIBLE, "map op on a bin that is not a map")
    value = particles.decode(*bin_value)
    if not isinstance(value, CdtMap):
        raise CdtError(RC_INCOMPATIBLE, "map bin holds no map")
    return value


def _read(current: CdtMap, command: int, args: list[Any]) -> Any:
    if command == _SIZE:
        return len(current)
    rtype, keys = _selection(args, _GETS[command])
    return _result(current, rtype, _pick(current, keys, rtype), _GETS[command])


def _modify(target: CdtMap, command: int, args: list[Any]) -> Any:
    handlers: dict[int, Callable[[CdtMap, int, list[Any]], Any]] = {
        **dict.fromkeys(_ADDS, _put),
        **dict.fromkeys(_INCREMENTS, _increment),
        **dict.fromkeys(_REMOVES, _remove),
        _CLEAR: _clear,
        _SET_TYPE: _set_type,
    }
    if command not in handlers:
        raise CdtError(RC_PARAMETER, f"unsupported CDT command {command}")
    return handlers[command](target, command, args)


def _put(target: CdtMap, command: int, args: list[Any]) -> Any:
    items = args[0] if command in _ITEMS else {_key(args[0]): args[1]}
    rest = args[1:] if command in _ITEMS else args[2:]
    if not isinstance(items, dict):
        raise CdtError(RC_PARAMETER, "map put items needs a map")
    _adopt_order(target, rest)
    flags = _ADDS[command] | (rest[1] if len(rest) > 1 else 0)
    _write_items(target, items, flags)
    return len(target)


def _increment(target: CdtMap, command: int, args: list[Any]) -> Any:
    key = _key(args[0])
    delta = args[1] if len(args) > 1 and args[1] is not None else 1
    _adopt_order(target, args[2:])
    old = target.get(key, 0)
    numeric = (int, float)
    if not isinstance(delta, numeric) or not isinstance(old, numeric):
        raise CdtError(RC_INCOMPATIBLE, "map increment on a value that is no number")
    if isinstance(old, bool) or isinstance(delta, bool):
        raise CdtError(RC_INCOMPATIBLE, "map increment on a boolean")

    flags = args[3] if len(args) > 3 else 0
    value = old + delta * _INCREMENTS[command]
    _write_items(target, {key: value}, flags)
    return target.get(key)


def _remove(target: CdtMap, command: int, args: list[Any]) -> Any:
    rtype, keys = _selection(args, _REMOVES[command])
    picked = _pick(target, keys, rtype)
    result = _result(target, rtype, picked, _REMOVES[command])
    for key, _ in picked:
        del target[key]
    return result


def _clear(target: CdtMap, command: int, args: list[Any]) -> Any:
    target.clear()
    return None


def _set_type(target: CdtMap, command: int, args: list[Any]) -> Any:
    target.flags = int(args[0]) & 0x03 if args else 0
    return None


def _adopt_order(target: CdtMap, rest: list[Any]) -> None:
    # The order attribute only shapes a map being created, as on a real server.
    if rest and isinstance(rest[0], int) and not target:
        target.flags = rest[0] & 0x03


def _write_items(target: CdtMap, items: dict[Any, Any], flags: int) -> None:
    allowed = {}
    for key, value in items.items():
        key = _key(key)
        if flags & CREATE_ONLY and key in target:
            if not flags & NO_FAIL:
                raise CdtError(RC_ELEMENT_EXISTS, "map key exists (create only)")
            continue
        if flags & UPDATE_ONLY and key not in target:
            if not flags & NO_FAIL:
                raise CdtError(RC_ELEMENT_NOT_FOUND, "map key missing (update only)")
            continue
        allowed[key] = value

    if len(allowed) < len(items) and not flags & PARTIAL:
        return
    target.update(allowed)


def _selection(args: list[Any], multi: bool) -> tuple[int, list[Any]]:
    if len(args) < 2 or not isinstance(args[0], int):
        raise CdtError(RC_PARAMETER, "map selection needs a return type and key")
    keys = args[1] if multi else [args[1]]
    if not isinstance(keys, list):
        raise CdtError(RC_PARAMETER, "map key list is not a list")
    return args[0], [_key(key) for key in keys]


def _pick(current: CdtMap, keys: list[Any], rtype: int) -> list[tuple[Any, Any]]:
    wanted = set(keys)
    if rtype & RETURN_INVERTED:
        return [(k, v) for k, v in _ordered(current) if k not in wanted]
    return [(k, v) for k, v in _ordered(current) if k in wanted]


def _ordered(current: CdtMap) -> list[tuple[Any, Any]]:
    items = list(current.items())
    if current.flags:
        items.sort(key=lambda item: msgpack.sort_key(item[0]))
    return items


def _result(
    current: CdtMap, rtype: int, picked: list[tuple[Any, Any]], multi: bool
) -> Any:
    kind = rtype & ~RETURN_INVERTED
    single = not multi and not rtype & RETURN_INVERTED
    if kind == RETURN_NONE:
        return None
    if kind == RETURN_COUNT:
        return len(picked)
    if kind == RETURN_EXISTS:
        return bool(picked)
    if kind in (RETURN_KEY, RETURN_VALUE):
        found = [item[0 if kind == RETURN_KEY else 1] for item in picked]
        return (found[0] if found else None) if single else found
    if kind == RETURN_KEY_VALUE:
        return CdtMap(picked)
    if kind in (RETURN_UNORDERED_MAP, RETURN_ORDERED_MAP):
        result = CdtMap(picked)
        result.flags = 1 if kind == RETURN_ORDERED_MAP else 0
        return result
    raise CdtError(RC_PARAMETER, f"unsupported map return type {rtype}")


def _key(key: Any) -> Any:
    if isinstance(key, list | dict | float):
        raise CdtError(RC_PARAMETER, "map keys must be integers, strings or bytes")
    return key
