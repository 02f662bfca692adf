"""Tests of the session cookie settings, its headers, and reading it back."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aerospike_wsgi_session.cookies import CookieSettings, read_cookie

VALUE = "a" * 43 + "." + "b" * 43


def parse_set_cookie(header: str) -> tuple[str, str, dict[str, str | None]]:
    """Split a Set-Cookie value into name, value and lower-cased attributes."""
    pair, *attributes = header.split("; ")
    name, _, value = pair.partition("=")
    parsed: dict[str, str | None] = {}
    for attribute in attributes:
        key, equals, text = attribute.partition("=")
        parsed[key.lower()] = text if equals else None
    return name, value, parsed


def test_default_header_is_httponly_lax_on_root() -> None:
    name, value, attributes = parse_set_cookie(
        CookieSettings().set_header(VALUE, secure=False)
    )

    assert (name, value) == ("session", VALUE)
    assert attributes == {"path": "/", "httponly": None, "samesite": "Lax"}


def test_every_setting_reaches_the_header() -> None:
    settings = CookieSettings(
        name="sid",
        max_age=3600,
        path="/app",
        domain="example.org",
        secure=True,
        samesite="Strict",
        partitioned=True,
    )
    _, _, attributes = parse_set_cookie(settings.set_header(VALUE, secure=False))

    assert attributes["max-age"] == "3600"
    assert "expires" in attributes
    assert (attributes["path"], attributes["domain"]) == ("/app", "example.org")
    assert attributes["samesite"] == "Strict"
    assert {"secure", "httponly", "partitioned"} <= attributes.keys()


@pytest.mark.parametrize(
    ("secure", "is_https", "expected"),
    [
        (False, True, False),
        (True, False, True),
        ("auto", True, True),
        ("auto", False, False),
    ],
    ids=["off", "on", "auto-https", "auto-http"],
)
def test_secure_attribute(secure: Any, is_https: bool, expected: bool) -> None:
    settings = CookieSettings(secure=secure)
    _, _, attributes = parse_set_cookie(settings.set_header(VALUE, secure=is_https))

    assert ("secure" in attributes) is expected


def test_auto_stays_secure_on_http_when_samesite_none_needs_it() -> None:
    settings = CookieSettings(secure="auto", samesite="None")
    _, _, attributes = parse_set_cookie(settings.set_header(VALUE, secure=False))

    assert attributes["samesite"] == "None"
    assert "secure" in attributes


def test_delete_header_repeats_every_attribute() -> None:
    settings = CookieSettings(
        name="__Secure-sid",
        path="/app",
        domain="example.org",
        secure=True,
        samesite="None",
        partitioned=True,
    )
    name, value, attributes = parse_set_cookie(settings.delete_header(secure=True))

    assert (name, value) == ("__Secure-sid", "")
    assert attributes["max-age"] == "0"
    assert (attributes["path"], attributes["domain"]) == ("/app", "example.org")
    assert attributes["samesite"] == "None"
    assert {"secure", "httponly", "partitioned"} <= attributes.keys()


def test_samesite_is_stored_in_canonical_case() -> None:
    mixed_case: Any = "sTrIcT"

    assert CookieSettings(samesite=mixed_case).samesite == "Strict"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"samesite": "sometimes"}, "samesite must be"),
        ({"samesite": "None"}, "SameSite=None requires"),
        ({"partitioned": True}, "partitioned requires"),
        ({"name": "__Host-s", "secure": True, "domain": "a.org"}, "__Host-"),
        ({"name": "__Host-s", "secure": True, "path": "/app"}, "__Host-"),
        ({"name": "__host-s"}, "requires a secure cookie"),
        ({"name": "__Secure-s"}, "requires a secure cookie"),
        ({"name": "my session"}, "not an RFC 6265 token"),
        ({"name": "a;b"}, "not an RFC 6265 token"),
        ({"name": ""}, "not an RFC 6265 token"),
        ({"name": "Path"}, "reserved"),
        ({"max_age": -1}, "max_age must be 0 or more"),
        ({"path": "app"}, "must start with '/'"),
        ({"domain": "a.org; x"}, "domain"),
        ({"secure": "yes"}, "secure must be"),
    ],
    ids=str,
)
def test_bad_settings_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CookieSettings(**options)


@pytest.mark.parametrize(
    "options",
    [{"max_age": 1.5}, {"max_age": True}, {"httponly": 1}, {"name": None}],
    ids=["float-max-age", "bool-max-age", "int-httponly", "no-name"],
)
def test_settings_of_the_wrong_type_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        CookieSettings(**options)


def test_secure_auto_counts_as_secure_for_the_checks() -> None:
    settings = CookieSettings(name="__Host-s", secure="auto", samesite="None")
    name, _, attributes = parse_set_cookie(settings.set_header(VALUE, secure=False))

    assert name == "__Host-s"
    assert "secure" in attributes


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("session=abc", "abc"),
        ("other=1; session=abc; more=2", "abc"),
        ('session="abc"', "abc"),
        ("session=abc; session=abc", "abc"),
        ("session=abc; session=xyz", None),
        ("sessions=abc", None),
        ("xsession=abc", None),
        ("", None),
        ("session=", ""),
    ],
    ids=[
        "alone",
        "among-others",
        "quoted",
        "agreeing",
        "disagreeing",
        "longer-name",
        "suffix-name",
        "empty-header",
        "empty-value",
    ],
)
def test_read_cookie(header: str, expected: str | None) -> None:
    assert read_cookie({"HTTP_COOKIE": header}, "session") == expected


def test_read_cookie_without_a_header() -> None:
    assert read_cookie({}, "session") is None


@given(st.text(), st.sampled_from(["session", "s", "é", "$x"]))
def test_read_cookie_never_raises(header: str, name: str) -> None:
    result = read_cookie({"HTTP_COOKIE": header}, name)

    assert result is None or isinstance(result, str)


cookie_tokens = st.text("abcXYZ019-_.", min_size=1, max_size=10)


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "session"]), cookie_tokens)),
    st.sampled_from(["; ", ";", " ; "]),
)
def test_read_cookie_finds_exactly_the_agreed_value(
    pairs: list[tuple[str, str]], separator: str
) -> None:
    header = separator.join(f"{name}={value}" for name, value in pairs)
    values = {value for name, value in pairs if name == "session"}

    expected = values.pop() if len(values) == 1 else None
    assert read_cookie({"HTTP_COOKIE": header}, "session") == expected


@pytest.mark.parametrize("value", [VALUE, "a:b/c", "a=b(c)"])
def test_header_read_back_gives_the_value(value: str) -> None:
    settings = CookieSettings(name="sid", max_age=60)
    name, sent, _ = parse_set_cookie(settings.set_header(value, secure=False))

    assert read_cookie({"HTTP_COOKIE": f"{name}={sent}"}, "sid") == value


def test_expires_follows_the_clock() -> None:
    settings = CookieSettings(max_age=600)

    def expires() -> datetime:
        _, _, attributes = parse_set_cookie(settings.set_header(VALUE, secure=False))
        return parsedate_to_datetime(str(attributes["expires"]))

    first = expires()
    time.sleep(1.05)
    second = expires()

    assert second > first
    left = second - datetime.now(UTC)
    assert 598 <= left.total_seconds() <= 600
