"""Options read from configuration text, as paste and Pyramid give them."""

from __future__ import annotations

import inspect
import secrets
from typing import Any

import pytest
from webtest import TestApp

from aerospike_wsgi_session import AerospikeStore, JSONMapper, SessionMiddleware
from aerospike_wsgi_session.exc import StoreError
from aerospike_wsgi_session.settings import (
    MIDDLEWARE_OPTIONS,
    STORE_OPTIONS,
    parse_settings,
)
from aerospike_wsgi_session.testing.plugin import Hosts

from .helpers import OLD_SECRET, SECRET, body_json, session_app

#: The least value each client option or policy field is read with.
SMALLEST_ACCEPTED = {
    "total_timeout": "0",
    "socket_timeout": "0",
    "max_retries": "0",
    "sleep_between_retries": "0",
    "policies.read.read_touch_ttl_percent": "-1",
    "policies.write.durable_delete": "yes",
    "max_conns_per_node": "1",
    "min_conns_per_node": "0",
    "tend_interval": "250",
    "login_timeout_ms": "0",
    "max_socket_idle": "0",
}


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


def test_the_login_timeout_goes_where_the_client_reads_it() -> None:
    store = parse_settings({"secret": SECRET, "login_timeout_ms": "2500"}).make_store()

    assert store._client_config["policies"]["login_timeout_ms"] == 2500
    assert "login_timeout_ms" not in store._client_config


def backend_settings(hosts: Hosts, **options: str) -> dict[str, str]:
    hosts_text = " ".join(f"{host}:{port}" for host, port in hosts)
    return {"secret": SECRET, "hosts": hosts_text, **options}


@pytest.mark.parametrize(
    ("option", "name"),
    [
        ("client.max_conn_per_node", "max_conn_per_node"),
        ("policies.read.exists", "exists"),
    ],
    ids=["client-option", "policy-field"],
)
def test_a_misspelt_client_option_fails_at_startup(
    aerospike_hosts: Hosts, option: str, name: str
) -> None:
    options = backend_settings(aerospike_hosts, check_at_startup="true")
    settings = parse_settings({**options, option: "5"})

    with pytest.raises(StoreError, match=f'"{name}" is an invalid'):
        settings.wrap(session_app)


def test_the_client_may_be_told_to_ignore_unknown_names(
    aerospike_hosts: Hosts,
) -> None:
    options = backend_settings(aerospike_hosts, check_at_startup="true")
    lenient = {"client.validate_keys": "false", "client.max_conn_per_node": "5"}
    settings = parse_settings({**options, **lenient})
    browser = TestApp(settings.wrap(session_app))

    assert browser.get("/get/color").status_int == 200


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
        ({"socket_timeout": "-1"}, "socket_timeout"),
        ({"max_retries": "-2"}, "max_retries"),
        ({"policies.write.sleep_between_retries": "-5"}, "sleep_between_retries"),
        ({"policies.read.total_timeout": "yes"}, "policies.read.total_timeout"),
        ({"policies.read.compress": "maybe"}, "policies.read.compress"),
        ({"policies.read.read_touch_ttl_percent": "101"}, "read_touch_ttl_percent"),
        ({"max_conns_per_node": "0"}, "max_conns_per_node"),
        ({"min_conns_per_node": "-1"}, "min_conns_per_node"),
        ({"min_conns_per_node": "20", "max_conns_per_node": "10"}, "min_conns"),
        ({"tend_interval": "100"}, "tend_interval"),
        ({"connect_timeout": "-300"}, "connect_timeout"),
        ({"rack_id": "-2"}, "rack_id"),
        ({"breaker_threshold": "-1"}, "breaker_threshold"),
        ({"environ_key": " "}, "environ_key"),
        ({"namespace": ""}, "namespace"),
    ],
    ids=lambda value: str(value),
)
def test_a_bad_option_is_refused_by_name(options: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse(**options)


def test_policy_fields_are_read_as_numbers_or_booleans() -> None:
    policies = parse(**{"policies.write.durable_delete": "1", "max_retries": "0"})[
        "policies"
    ]

    assert policies["write"] == {"durable_delete": True, "max_retries": 0}


def test_the_smallest_accepted_values_serve_requests(
    aerospike_hosts: Hosts, aerospike_namespace: str, aerospike_set: str
) -> None:
    hosts = " ".join(f"{host}:{port}" for host, port in aerospike_hosts)
    backend = {"hosts": hosts, "namespace": aerospike_namespace, "set": aerospike_set}
    settings = parse_settings({"secret": SECRET, **backend, **SMALLEST_ACCEPTED})
    store = settings.make_store()
    browser = TestApp(settings.wrap(session_app, store))

    browser.get("/set/color", params={"value": "blue"})
    color = body_json(browser.get("/get/color"))
    store.close()

    assert color == "blue"


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
