"""The paste.deploy filter, loaded from a real ini file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from paste.deploy import loadapp
from webtest import TestApp

from aerospike_wsgi_session import SessionMiddleware

from .deployment import INI, Backend, edited_ini
from .helpers import set_cookies
from .readme_blocks import write_example

SECRET_LINE = "deploy-test-secret-0123456789abcdef0123"
README_INI = "# session.ini: gunicorn --paste session.ini --workers 4"


@pytest.fixture
def global_conf(backend: Backend) -> dict[str, str]:
    return backend.global_conf()


def load(path: Path, global_conf: dict[str, str]) -> Any:
    return loadapp(f"config:{path}", global_conf=global_conf)


def test_the_pipeline_puts_the_middleware_in_front(
    global_conf: dict[str, str],
) -> None:
    app = load(INI, global_conf)

    assert isinstance(app, SessionMiddleware)
    assert app.cookie.name == "sid"
    assert app.manager.idle_timeout == 1800


def test_default_values_arrive_by_interpolation_and_get(
    global_conf: dict[str, str],
) -> None:
    app = load(INI, global_conf)

    assert app.cookie.max_age == 3600
    assert app.cookie.samesite == "Strict"


def test_client_policies_reach_the_client_config(
    global_conf: dict[str, str],
) -> None:
    policies = load(INI, global_conf).manager.store._client_config["policies"]

    assert policies["write"]["total_timeout"] == 2000
    assert policies["read"] == {
        "socket_timeout": 1000,
        "total_timeout": 2000,
        "max_retries": 2,
    }


def test_requests_through_the_loaded_app(global_conf: dict[str, str]) -> None:
    browser = TestApp(load(INI, global_conf))

    login = browser.post("/login", {"user": "ada"})
    browser.post("/incr/visits")
    counts = browser.get("/counts")

    cookie = set_cookies(login)["sid"]
    assert (cookie["max-age"], cookie["samesite"]) == ("3600", "Strict")
    assert browser.get("/whoami").json == {"user": "ada"}
    assert counts.json == {"visits": 1}


def test_a_cookie_of_the_older_secret_still_verifies(
    tmp_path: Path, global_conf: dict[str, str]
) -> None:
    before_rotation = edited_ini(tmp_path, f"    {SECRET_LINE}\n", "")
    old_browser = TestApp(load(before_rotation, global_conf))
    old_browser.post("/login", {"user": "ada"})

    browser = TestApp(load(INI, global_conf))
    browser.set_cookie("sid", old_browser.cookies["sid"])

    assert browser.get("/whoami").json == {"user": "ada"}


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("idle_timeout = 30m", "idle_timeout = half an hour", "idle_timeout"),
        ("httponly = yes", "httponly = sometimes", "httponly"),
        ("rolling = off", "rollin = off", "did you mean rolling"),
        ("total_timeout = 2000", "total_timeout = slow", "total_timeout"),
        ("cookie_name = sid", "cookie_name = s;d", "cookie name"),
        ("on_store_error = raise", "on_store_error = panic", "on_store_error"),
        (f"    {SECRET_LINE}\n", "    too-short\n", "secret #0"),
        ("total_timeout = 2000", "total_timeout = -1", "total_timeout"),
        (
            "policies.read.max_retries = 2",
            "policies.read.socket_timeout = -5",
            "policies.read.socket_timeout",
        ),
        ("breaker_threshold = 0", "max_conns_per_node = -3", "max_conns_per_node"),
        ("cookie_name = sid", "cookie_name = sid\nenviron_key =", "environ_key"),
    ],
    ids=[
        "duration",
        "boolean",
        "unknown",
        "policy",
        "cookie",
        "choice",
        "secret",
        "negative-timeout",
        "negative-policy-field",
        "negative-count",
        "empty-environ-key",
    ],
)
def test_a_bad_value_fails_at_load_naming_the_option(
    tmp_path: Path, global_conf: dict[str, str], old: str, new: str, message: str
) -> None:
    path = edited_ini(tmp_path, old, new)

    with pytest.raises(ValueError, match=message) as raised:
        load(path, global_conf)

    assert "too-short" not in str(raised.value)


def test_the_readme_ini_serves_its_app(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: Backend,
) -> None:
    write_example(tmp_path, "# hello.py")
    ini = write_example(tmp_path, README_INI, backend)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hello", raising=False)

    browser = TestApp(loadapp(f"config:{ini}"))
    browser.get("/")

    assert browser.get("/").text == "visit number 2\n"
