"""Tests of session ids, cookie signatures and record keys."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aerospike_wsgi_session.signing import Signer, new_session_id

NEW = "n" * 32 + "-new-secret"
OLD = "o" * 32 + "-old-secret"
URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


def test_session_ids_are_43_urlsafe_characters_and_differ() -> None:
    ids = {new_session_id() for _ in range(100)}

    assert len(ids) == 100
    assert all(len(i) == 43 and URLSAFE.fullmatch(i) for i in ids)


def test_signed_value_unsigns_to_its_id() -> None:
    signer = Signer(NEW)
    session_id = new_session_id()

    assert signer.unsign(signer.sign(session_id)) == (session_id, True)


def test_old_secret_verifies_and_asks_for_reissue() -> None:
    session_id = new_session_id()
    cookie_value = Signer(OLD).sign(session_id)

    assert Signer([NEW, OLD]).unsign(cookie_value) == (session_id, False)


def test_dropped_secret_no_longer_verifies() -> None:
    cookie_value = Signer(OLD).sign(new_session_id())

    assert Signer([NEW]).unsign(cookie_value) is None


def flip(text: str, index: int) -> str:
    """Return *text* with one urlsafe character changed at *index*."""
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


@pytest.mark.parametrize("index", [0, 21, 42], ids=["id-start", "id-mid", "id-end"])
def test_tampered_id_is_refused(index: int) -> None:
    signer = Signer(NEW)

    assert signer.unsign(flip(signer.sign(new_session_id()), index)) is None


@pytest.mark.parametrize("index", [44, 65, 86], ids=["sig-start", "mid", "end"])
def test_tampered_signature_is_refused(index: int) -> None:
    signer = Signer(NEW)

    assert signer.unsign(flip(signer.sign(new_session_id()), index)) is None


@pytest.mark.parametrize(
    "cookie_value",
    ["", ".", "abc", "x" * 87, "x" * 43 + "." + "y" * 42, "x" * 43 + ".+" + "y" * 42],
    ids=["empty", "dot", "short", "no-dot", "short-sig", "bad-alphabet"],
)
def test_malformed_values_are_refused(cookie_value: str) -> None:
    assert Signer(NEW).unsign(cookie_value) is None


def test_unsigned_id_is_refused() -> None:
    session_id = new_session_id()

    assert Signer(NEW).unsign(session_id) is None
    assert Signer(NEW).unsign(f"{session_id}.{session_id}") is None


@given(st.text())
def test_arbitrary_text_never_raises_and_never_passes(text: str) -> None:
    assert Signer([NEW, OLD]).unsign(text) is None


@given(st.from_type(object))
def test_non_text_never_raises(value: Any) -> None:
    assert Signer(NEW).unsign(value) is None


def test_sign_refuses_what_is_not_a_session_id() -> None:
    with pytest.raises(ValueError, match="new_session_id"):
        Signer(NEW).sign("chosen-by-the-client")


def test_record_key_is_stable_keyed_and_hides_the_id() -> None:
    session_id = new_session_id()
    key = Signer([NEW, OLD]).record_key(session_id)

    assert key == Signer(OLD).record_key(session_id)
    assert key != Signer(NEW).record_key(session_id)
    assert session_id not in key
    assert len(key) <= 64 and URLSAFE.fullmatch(key)


def test_record_key_secret_overrides_the_last_secret() -> None:
    session_id = new_session_id()
    separate = "r" * 40

    with_separate = Signer([NEW, OLD], record_key_secret=separate)

    assert with_separate.record_key(session_id) == Signer(
        NEW, record_key_secret=separate
    ).record_key(session_id)
    assert with_separate.record_key(session_id) != Signer(OLD).record_key(session_id)


def test_purposes_use_different_keys() -> None:
    signer = Signer(NEW)
    session_id = new_session_id()
    signature = signer.sign(session_id).partition(".")[2]

    assert signer.record_key(session_id) != signature


def test_bytes_and_str_secrets_agree() -> None:
    session_id = new_session_id()

    assert Signer(NEW.encode()).sign(session_id) == Signer(NEW).sign(session_id)


@pytest.mark.parametrize(
    ("secret", "error"),
    [
        ("short", ValueError),
        ([], ValueError),
        ([NEW, "x" * 31], ValueError),
        (12345, TypeError),
        ([NEW, None], TypeError),
    ],
    ids=["short", "empty-list", "short-in-list", "int", "none-in-list"],
)
def test_bad_secrets_are_refused(secret: Any, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        Signer(secret)

    assert NEW not in str(caught.value)
    assert "short" not in str(caught.value)
    assert "x" * 31 not in str(caught.value)


def test_short_record_key_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="record_key_secret"):
        Signer(NEW, record_key_secret="tiny")


def test_secrets_never_show_in_repr_or_str() -> None:
    signer = Signer([NEW, OLD], record_key_secret="r" * 40)

    for text in (repr(signer), str(signer)):
        assert "nnnn" not in text
        assert "oooo" not in text
        assert "rrrr" not in text
    assert repr(signer) == "<Signer: 2 secret(s), record keys from separate>"


def test_record_keys_stay_the_same_past_the_memo_of_recent_ones() -> None:
    signer = Signer(NEW)
    ids = [new_session_id() for _ in range(3000)]

    first = [signer.record_key(session_id) for session_id in ids]
    again = [signer.record_key(session_id) for session_id in reversed(ids)]

    assert again == first[::-1]
    assert first == [Signer(NEW).record_key(session_id) for session_id in ids]
