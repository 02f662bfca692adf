"""Tests of the JSON mapper: faithful round trips, rejections, determinism."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aerospike_wsgi_session import AerospikeStore
from aerospike_wsgi_session.exc import DecodeError, UnencodableValueError
from aerospike_wsgi_session.mapper import JSONMapper, Mapper
from aerospike_wsgi_session.signing import Signer

from .helpers import SECRET, BinPerKeyMapper, body_json, set_cookies

offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.binary(),
    st.dates(),
    st.datetimes(),
    st.datetimes(timezones=offsets),
    st.times(),
    st.times(timezones=offsets),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.uuids(),
)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(tuple),
        st.frozensets(inner, max_size=4),
    ),
    max_leaves=12,
)
# Keys that look like tags, or like escaped tags, are the interesting ones.
dict_keys = st.one_of(st.text(), st.sampled_from(["$t", "$$t", "$s", "$", "$$"]))
values = st.recursive(
    hashables,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(dict_keys, inner, max_size=4),
        st.sets(hashables, max_size=4),
    ),
    max_leaves=20,
)


def round_trip(value: Any) -> Any:
    mapper = JSONMapper()
    return mapper.decode_value(mapper.encode_value("k", value))


def same_offsets(before: Any, after: Any) -> bool:
    """Whether aware datetimes kept their UTC offset, anywhere inside."""
    if isinstance(before, datetime | time):
        return bool(before.utcoffset() == after.utcoffset())
    if isinstance(before, list | tuple):
        return all(map(same_offsets, before, after))
    if isinstance(before, dict):
        return all(same_offsets(item, after[key]) for key, item in before.items())
    return True


@given(values)
def test_any_supported_value_round_trips(value: Any) -> None:
    decoded = round_trip(value)

    assert decoded == value
    assert type(decoded) is type(value)
    assert same_offsets(value, decoded)


@given(values)
def test_equal_values_encode_to_identical_text(value: Any) -> None:
    mapper = JSONMapper()
    copy = mapper.decode_value(mapper.encode_value("k", value))

    assert mapper.encode_value("k", copy) == mapper.encode_value("k", value)


@given(st.dictionaries(dict_keys, values, max_size=5))
def test_record_round_trips(data: dict[str, Any]) -> None:
    mapper = JSONMapper(bin_name="s")
    record = mapper.to_record(data)

    assert list(record) == ["s"]
    assert mapper.from_record(record) == data


@pytest.mark.parametrize(
    "value",
    [
        {"$t": [1, 2]},
        {"$dt": "2024-01-01T00:00:00"},
        {"$$t": [1]},
        {"$unknown": 1, "plain": 2},
        [{"$b": "AA=="}, ({"$s": []},)],
    ],
    ids=["tag", "datetime-tag", "escaped-tag", "two-keys", "nested"],
)
def test_dict_that_looks_like_a_tag_stays_a_dict(value: Any) -> None:
    assert round_trip(value) == value


def test_tagged_types_keep_their_type() -> None:
    aware = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    value = {
        "when": [aware, datetime(2024, 5, 1, 12, 30, 15, 7), date(2024, 5, 1)],
        "at": time(8, 15, 0, 42),
        "price": Decimal("19.990"),
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "raw": b"\x00\xff",
        "pair": (1, (2, {3})),
        "frozen": frozenset({"a", "b"}),
    }

    assert round_trip(value) == value


def test_set_order_does_not_change_the_text() -> None:
    mapper = JSONMapper()
    words = [f"word{i}" for i in range(50)]

    forwards = mapper.encode_value("k", set(words))
    backwards = mapper.encode_value("k", set(reversed(words)))

    assert forwards == backwards
    assert json.loads(forwards) == {"$s": sorted(words)}


def test_text_is_compact_sorted_and_not_ascii_escaped() -> None:
    text = JSONMapper().encode_value("k", {"b": "été", "a": [1, 2]})

    assert text == '{"a":[1,2],"b":"été"}'


@given(st.one_of(st.integers(), st.booleans(), st.none()))
def test_scalars_are_written_as_json_writes_them(value: Any) -> None:
    text = JSONMapper().encode_value("k", value)

    decoded = JSONMapper().decode_value(text)
    assert text == json.dumps(value)
    assert (decoded, type(decoded)) == (value, type(value))


class Opaque:
    pass


class Size(IntEnum):
    SMALL = 1


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (Opaque(), "the value itself"),
        (len, "the value itself"),
        (1j, "the value itself"),
        (float("nan"), "the value itself"),
        ([1, float("inf")], "[1]"),
        ({"a": {"b": [Decimal("NaN")]}}, "['a']['b'][0]"),
        ({"a": {1: "x"}}, "['a'][1]"),
        ({"a": [{None: 1}]}, "['a'][0][None]"),
        ((1, {2, Opaque()}), "[1]{member}"),
        ([Size.SMALL], "[0]"),
    ],
    ids=[
        "object",
        "function",
        "complex",
        "nan",
        "infinity-in-list",
        "decimal-nan-deep",
        "int-key",
        "none-key-in-list",
        "object-in-set-in-tuple",
        "int-subclass",
    ],
)
def test_unencodable_value_names_key_and_place(value: Any, where: str) -> None:
    with pytest.raises(UnencodableValueError) as caught:
        JSONMapper().encode_value("cart", value)

    assert caught.value.key == "cart"
    assert str(caught.value).startswith("session key 'cart':")
    assert f"at {where}:" in str(caught.value)


def test_session_keys_must_be_str() -> None:
    with pytest.raises(UnencodableValueError, match="session keys must be str"):
        JSONMapper().to_record({1: "one"})  # type: ignore[dict-item]


def test_cyclic_value_is_refused() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)

    with pytest.raises(UnencodableValueError) as caught:
        JSONMapper().encode_value("loop", cycle)

    assert caught.value.key == "loop"


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(UnencodableValueError, match="surrogate"):
        JSONMapper().encode_value("name", ["ok", "\ud800"])


def test_time_with_a_zone_of_no_fixed_offset_is_refused() -> None:
    zoned = time(9, 0, tzinfo=ZoneInfo("Europe/Paris"))

    with pytest.raises(UnencodableValueError, match="no fixed offset"):
        JSONMapper().encode_value("opening", zoned)


@pytest.mark.parametrize(
    "bins",
    [
        {},
        {"other": {"k": "1"}},
        {"data": "not a map"},
        {"data": {"k": 1}},
        {"data": {2: "1"}},
        {"data": {"k": "{not json"}},
        {"data": {"k": '{"$zz":1}'}},
        {"data": {"k": '{"$dt":"yesterday"}'}},
        {"data": {"k": '{"$dt":5}'}},
        {"data": {"k": '{"$t":"abc"}'}},
        {"data": {"k": '{"$s":[[1]]}'}},
        {"data": {"k": '{"$dec":"one"}'}},
        {"data": {"k": '{"$b":"@@"}'}},
        {"data": {"k": '{"$t":[],"x":1}'}},
    ],
    ids=[
        "no-bins",
        "missing-bin",
        "bin-not-a-map",
        "entry-not-text",
        "key-not-text",
        "invalid-json",
        "unknown-tag",
        "bad-datetime",
        "payload-wrong-type",
        "tuple-from-string",
        "unhashable-set-member",
        "bad-decimal",
        "bad-base64",
        "tag-with-other-keys",
    ],
)
def test_foreign_or_corrupt_record_raises_decode_error(bins: Any) -> None:
    with pytest.raises(DecodeError):
        JSONMapper().from_record(bins)


@pytest.mark.parametrize(
    ("text", "value"),
    [(" 1", 1), ('["a"] \n', ["a"]), (' {"$$x": 2}', {"$x": 2})],
    ids=["space-before", "space-after", "escaped-key"],
)
def test_text_with_whitespace_around_it_decodes(text: str, value: Any) -> None:
    assert JSONMapper().decode_value(text) == value


@pytest.mark.parametrize(
    "text", ["1 2", '"a"x', "[1] ]"], ids=["number", "str", "list"]
)
def test_text_with_data_after_the_value_is_refused(text: str) -> None:
    with pytest.raises(DecodeError, match="invalid JSON"):
        JSONMapper().decode_value(text)


def test_decode_error_names_the_session_key() -> None:
    bins = {"data": {"good": "1", "cart": '{"$u":"nope"}'}}

    with pytest.raises(DecodeError, match="session key 'cart': malformed '\\$u'"):
        JSONMapper().from_record(bins)


@pytest.mark.parametrize("bin_name", ["", "sixteen_letters_"], ids=["empty", "long"])
def test_bad_bin_name_is_refused(bin_name: str) -> None:
    with pytest.raises(ValueError, match="bin_name"):
        JSONMapper(bin_name=bin_name)


def test_json_mapper_is_a_mapper() -> None:
    mapper: Mapper = JSONMapper()

    assert mapper.from_record(mapper.to_record({"n": 1})) == {"n": 1}


def test_encoding_some_keys_gives_just_their_entries() -> None:
    mapper = JSONMapper()
    whole = mapper.to_record({"a": 1, "b": (2,)})

    assert mapper.entrywise
    assert mapper.to_record({"b": (2,)}) == {"data": {"b": whole["data"]["b"]}}


class WholeJSONMapper:
    """A custom mapper: the whole session as one JSON text in one bin."""

    def to_record(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"blob": json.dumps(dict(data))}

    def from_record(self, bins: Mapping[str, Any]) -> dict[str, Any]:
        return dict(json.loads(bins["blob"]))


class RefusingReader(WholeJSONMapper):
    def from_record(self, bins: Mapping[str, Any]) -> dict[str, Any]:
        raise ValueError("not a layout this mapper knows")


class PickyWriter(WholeJSONMapper):
    def to_record(self, data: Mapping[str, Any]) -> dict[str, Any]:
        if "bad" in data:
            raise TypeError("cannot store 'bad'")
        return super().to_record(data)


MappedStore = Callable[[Mapper], AerospikeStore]


@pytest.fixture
def mapped_store(
    aerospike_client: Any, aerospike_namespace: str, aerospike_set: str
) -> MappedStore:
    """``mapped_store(mapper)``: a store with that mapper on the test's set."""

    def build(mapper: Mapper) -> AerospikeStore:
        return AerospikeStore(
            aerospike_namespace, aerospike_set, client=aerospike_client, mapper=mapper
        )

    return build


def test_a_custom_mapper_that_cannot_read_a_record_means_no_session(
    make_app: Any, mapped_store: MappedStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = make_app(store=mapped_store(WholeJSONMapper()))
    writer.get("/set/name?value=ada")
    reader = make_app(store=mapped_store(RefusingReader()))
    reader.cookiejar = writer.cookiejar

    response = reader.get("/get/name")

    assert response.status_int == 200
    assert body_json(response) is None
    [warned] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warned.name.startswith("aerospike_wsgi_session")
    assert "ada" not in warned.getMessage()
    assert body_json(writer.get("/get/name")) == "ada"


def test_a_custom_mapper_that_cannot_write_a_value_changes_nothing(
    make_app: Any, mapped_store: MappedStore
) -> None:
    store = mapped_store(PickyWriter())
    client = make_app(store=store)
    cookie = set_cookies(client.get("/set/name?value=ada"))["session"].value

    with pytest.raises(UnencodableValueError) as caught:
        client.get("/set/bad?value=1")

    assert (caught.value.key, type(caught.value.__cause__)) == ("bad", TypeError)
    signer = Signer(SECRET)
    session_id = cookie.partition(".")[0]
    _, meta, bins = store.client.get(store.key(signer.record_key(session_id)))
    assert (meta["gen"], json.loads(bins["blob"])) == (1, {"name": "ada"})


def test_a_session_key_cannot_become_one_of_the_store_s_own_bins(
    make_app: Any, mapped_store: MappedStore
) -> None:
    # With a bin per key, a key named like the store's user bin would bind
    # the session to a user of the client's choosing.
    store = mapped_store(BinPerKeyMapper())
    client = make_app(store=store)
    cookie = set_cookies(client.get("/set/name?value=ada"))["session"].value

    with pytest.raises(ValueError, match="_user"):
        client.get("/set/_user?value=alice")

    session_id = cookie.partition(".")[0]
    _, _, bins = store.client.get(store.key(Signer(SECRET).record_key(session_id)))
    assert (bins.get("_user"), json.loads(bins["name"])) == (None, "ada")
