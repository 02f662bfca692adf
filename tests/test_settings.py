"""Options read from configuration text, as paste and Pyramid give them."""

from __future__ import annotations

import inspect
import secrets
from typing import Any

import pytest

from aerospike_wsgi_session import AerospikeStore, JSONMapper, SessionMiddleware
from aerospike_wsgi_session.settings import (
    MIDDLEWARE_OPTIONS,
    STORE_OPTIONS,
    parse_settings,
)

from .helpers import OLD_SECRET, SECRET


def parse(**options: Any) -> dict[str, Any]:
    """Every converted option, middleware and store together."""
    parsed = parse_settings({"secret": SECRET, **options})
    return {**parsed.middleware_options, **parsed.store_options}


def parameters(function: Any, *left_out: str) -> set[str]:
    names = set(inspect.signature(function).parameters)
    return names - {"self", *left_out}


def test_every_middleware_option_has_a_converter() -> None:
    expected = parameters(SessionMiddleware.__init__, "app", "store")

    assert set(MIDDLEWARE_OPTIONS) == expected


def test_every_store_option_has_a_converter() -> None:
    expected = parameters(AerospikeStore.__init__, "client_config")

    assert expected <= set(STORE_OPTIONS)


@pytest.mark.parametrize(
    ("option", "text", "value"),
    [
        ("httponly", "no", False),
        ("httponly", "On", True),
        ("rolling", "1", True),
        ("trust_proxy", "false", False),
        ("secure", "auto", "auto"),
        ("secure", "yes", True),
        ("samesite", "Strict", "Strict"),
        ("samesite", "", None),
        ("max_age", "3600", 3600),
        ("max_age", "8h", 8 * 3600),
        ("max_age", "none", None),
        ("idle_timeout", "30m", 1800),
        ("absolute_timeout", "", None),
        ("ttl", "-1", -1),
        ("ttl", "2d", 2 * 86400),
        ("retry_after", "10s", 10),
        ("breaker_threshold", "0", 0),
        ("breaker_cooldown", "2.5", 2.5),
        ("domain", "", None),
        ("domain", " example.com ", "example.com"),
        ("hosts", "h1:3000 h2:4000", [("h1", 3000), ("h2", 4000)]),
        ("hosts", "h1:3000,\nh2", [("h1", 3000), ("h2", 3000)]),
        ("id_generator", "secrets:token_hex", secrets.token_hex),
        ("client.max_conns_per_node", "50", 50),
        ("client.tls", '{"enable": false}', {"enable": False}),
        ("client.app_id", "shop", "shop"),
        ("connect_timeout", "700", 700),
        ("user", "app", "app"),
    ],
)
def test_text_becomes_the_option_value(option: str, text: str, value: Any) -> None:
    key = option.removeprefix("client.")

    assert parse(**{option: text})[key] == value


def test_secrets_are_one_per_line_newest_first() -> None:
    parsed = parse(secret=f"\n  {SECRET}\n\n  {OLD_SECRET}\n")

    assert parsed["secret"] == [SECRET, OLD_SECRET]


def test_a_class_named_as_mapper_is_instantiated() -> None:
    parsed = parse(mapper="aerospike_wsgi_session.mapper:JSONMapper")

    assert isinstance(parsed["mapper"], JSONMapper)


def test_typed_values_pass_unchanged() -> None:
    parsed = parse(httponly=False, max_age=60, secret=[SECRET, OLD_SECRET])

    assert (parsed["httponly"], parsed["max_age"]) == (False, 60)
    assert parsed["secret"] == [SECRET, OLD_SECRET]


def test_timeouts_apply_to_every_request_policy() -> None:
    policies = parse(total_timeout="900", socket_timeout="300")["policies"]

    assert set(policies) == {"read", "write", "operate", "remove"}
    assert all(
        p == {"total_timeout": 900, "socket_timeout": 300} for p in policies.values()
    )


def test_a_policys_own_field_wins_over_the_shortcut() -> None:
    policies = parse(**{"policies.read.total_timeout": "100", "total_timeout": "900"})[
        "policies"
    ]

    assert policies["read"]["total_timeout"] == 100
    assert policies["write"]["total_timeout"] == 900


def test_policies_reach_the_client_config_over_the_defaults() -> None:
    store = parse_settings({"secret": SECRET, "max_retries": "3"}).make_store()

    read_policy = store._client_config["policies"]["read"]
    assert read_policy["max_retries"] == 3
    assert read_policy["total_timeout"] == 500


def test_only_prefixed_names_are_options() -> None:
    settings = {"pyramid.reload": "true", "app.secret": SECRET, "app.path": "/a"}

    parsed = parse_settings(settings, prefix="app.")

    assert parsed.middleware_options == {"secret": SECRET, "path": "/a"}


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_age": "soon"}, "max_age"),
        ({"httponly": "maybe"}, "httponly"),
        ({"idle_timeout": "5 minutes"}, "idle_timeout"),
        ({"breaker_threshold": "many"}, "breaker_threshold"),
        ({"hosts": "h1:port"}, "hosts"),
        ({"clock": "no.such.module:clock"}, "clock"),
        ({"total_timeout": "fast"}, "total_timeout"),
        ({"policies.reed.total_timeout": "5"}, "policies.reed.total_timeout"),
        ({"policies.read.total_timout": "5"}, "policies.read.total_timout"),
        ({"client": "mine"}, "client"),
        ({"max_agee": "60"}, "did you mean max_age"),
    ],
    ids=lambda value: str(value),
)
def test_a_bad_option_is_refused_by_name(options: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse(**options)


def test_a_missing_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret is required"):
        parse_settings({"path": "/"})


def test_a_bad_secret_never_shows_in_the_error() -> None:
    short = "not-long-enough-but-secret"
    parsed = parse_settings({"secret": f"{SECRET}\n{short}"})

    with pytest.raises(ValueError, match="secret #1") as raised:
        parsed.wrap(lambda environ, start_response: [])

    assert short not in str(raised.value)
    assert SECRET not in str(raised.value)
    assert SECRET not in repr(parsed)
