"""Session data that decodes each value the first time it is used."""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, KeysView, MutableMapping
from typing import Any

from .exc import DecodeError

#: Decodes the stored form of one session value, given its key.
DecodeEntry = Callable[[str, Any], Any]


class LazyEntries(MutableMapping[str, Any]):
    """A session's data, its values decoded one by one as they are asked for.

    A request that reads one key of a large session decodes that key only.
    A value that cannot be decoded reads as absent: the decoder has logged
    it, and the entry stays stored as it is until the application sets that
    key or clears the session. Regenerating the session drops it: the new
    record holds the values that could be read. Whatever iterates or counts
    the data decodes every value first, so that the keys it sees are the
    ones that can be read.

    :param values: values decoded already.
    :param stored: each other session key's stored form, not decoded yet.
    :param decode: turns a stored form into the value; it raises
        :class:`~aerospike_wsgi_session.exc.DecodeError` when it cannot.
        Required when ``stored`` has entries.
    """

    __slots__ = ("_decode", "_stored", "_values", "unreadable")

    def __init__(
        self,
        values: dict[str, Any] | None = None,
        stored: dict[str, Any] | None = None,
        decode: DecodeEntry | None = None,
    ) -> None:
        if stored and decode is None:
            raise TypeError("stored values need a decode function")
        self._values = {} if values is None else values
        self._stored = {} if stored is None else stored
        self._decode = decode
        #: The keys whose stored form could not be decoded.
        self.unreadable: set[str] = set()

    def copy(self) -> LazyEntries:
        """A copy that decodes on its own, sharing no state with this one."""
        twin = LazyEntries(dict(self._values), dict(self._stored), self._decode)
        twin.unreadable = set(self.unreadable)
        return twin

    def __getitem__(self, key: str) -> Any:
        if key in self._stored:
            self._decode_one(key)
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        if key in self._stored:
            self._decode_one(key)
        return key in self._values

    def __setitem__(self, key: str, value: Any) -> None:
        self._stored.pop(key, None)
        self.unreadable.discard(key)
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        if key in self._stored:
            self._decode_one(key)
        del self._values[key]

    def __iter__(self) -> Iterator[str]:
        if self._stored:
            self._decode_all()
        return iter(self._values)

    def __len__(self) -> int:
        if self._stored:
            self._decode_all()
        return len(self._values)

    def keys(self) -> KeysView[str]:
        if self._stored:
            self._decode_all()
        return self._values.keys()

    def items(self) -> ItemsView[str, Any]:
        if self._stored:
            self._decode_all()
        return self._values.items()

    def __repr__(self) -> str:
        return f"<LazyEntries {len(self._values)} decoded, {len(self._stored)} not>"

    def clear(self) -> None:
        """Remove every key, the unreadable ones too, decoding none."""
        self._values.clear()
        self._stored.clear()
        self.unreadable.clear()

    def every_key(self) -> set[str]:
        """All keys stored, readable or not, decoding none."""
        return {*self._values, *self._stored, *self.unreadable}

    def _decode_one(self, key: str) -> None:
        stored = self._stored.pop(key)
        assert self._decode is not None
        try:
            self._values[key] = self._decode(key, stored)
        except DecodeError:
            self.unreadable.add(key)

    def _decode_all(self) -> None:
        for key in list(self._stored):
            self._decode_one(key)
