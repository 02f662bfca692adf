"""The Pyramid integration, through a real Pyramid app and WebTest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
from paste.deploy import loadapp
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.interfaces import ISession
from pyramid.request import Request
from pyramid.response import Response
from webtest import TestApp
from zope.interface.verify import verifyObject

from aerospike_wsgi_session.middleware import UNAVAILABLE_BODY
from aerospike_wsgi_session.pyramid import PyramidSession
from aerospike_wsgi_session.testing import AerospikeServer
from aerospike_wsgi_session.testing.plugin import Hosts

from .deployment import Backend
from .helpers import OLD_SECRET, SECRET, set_cookies

PREFIX = "aerospike_session."


def login(request: Request) -> Any:
    request.session.session.regenerate()
    request.session["user"] = request.POST["user"]
    request.session.flash(f"Welcome, {request.POST['user']}")
    request.session.flash("Check your settings", queue="notice")
    raise HTTPFound(location="/")


def home(request: Request) -> Any:
    session = request.session
    return {
        "user": session.get("user"),
        "notices": session.peek_flash("notice"),
        "flash": session.pop_flash(),
        "new": session.new,
        "created": session.created,
        "keys": sorted(session.keys()),
    }


def logout(request: Request) -> Any:
    request.session.invalidate()
    return {"user": request.session.get("user")}


def form(request: Request) -> Any:
    return {"csrf_token": request.session.get_csrf_token()}


def transfer(request: Request) -> Any:
    return {"done": True}


def cart(request: Request) -> Any:
    request.session.setdefault("cart", []).append(request.params["item"])
    if request.params.get("tell") == "yes":
        request.session.changed()
    return {"cart": request.session["cart"]}


def fail(request: Request) -> Any:
    request.session["half"] = "done"
    raise RuntimeError("the view broke")


def stream(request: Request) -> Any:
    session = request.session

    def body() -> Iterator[bytes]:
        yield b"first "
        session["streamed"] = "during the body"
        yield b"last"

    return Response(app_iter=body(), content_type="text/plain")


def later(request: Request) -> Any:
    def tell_the_user(request: Request, response: Response) -> None:
        response.headers["X-User"] = str(request.session.get("user"))

    def remember(request: Request, response: Response) -> None:
        request.session["remembered"] = request.params["what"]

    request.add_response_callback(tell_the_user)
    if "what" in request.params:
        request.add_response_callback(remember)
    return {}


def broken(request: Request) -> Any:
    request.response.status_int = 500
    return {"error": str(request.exception)}


def pyramid_app(hosts: Hosts, namespace: str, set_name: str, **settings: Any) -> Any:
    """A Pyramid app whose sessions are in the test backend."""
    options = {
        "secret": SECRET,
        "hosts": " ".join(f"{host}:{port}" for host, port in hosts),
        "namespace": namespace,
        "set": set_name,
        **settings,
    }
    return make_pyramid_app({PREFIX + k: v for k, v in options.items()})


def paste_main(global_config: dict[str, str], **settings: str) -> Any:
    """The app factory a Pyramid ini file names."""
    return make_pyramid_app(settings)


def make_pyramid_app(settings: dict[str, Any]) -> Any:
    """The test views, with these Pyramid settings."""
    with Configurator(settings=settings) as config:
        config.include("aerospike_wsgi_session.pyramid")
        config.set_default_csrf_options(require_csrf=True)
        for name, view in [
            ("login", login),
            ("home", home),
            ("logout", logout),
            ("form", form),
            ("transfer", transfer),
            ("cart", cart),
            ("fail", fail),
            ("stream", stream),
            ("later", later),
        ]:
            config.add_route(name, "/" if name == "home" else f"/{name}")
            config.add_view(view, route_name=name, renderer="json", require_csrf=False)
        config.add_view(
            transfer, route_name="transfer", renderer="json", request_method="POST"
        )
        config.add_view(broken, context=RuntimeError, renderer="json")
        return config.make_wsgi_app()


@pytest.fixture
def make_browser(
    aerospike_hosts: Hosts, aerospike_namespace: str, aerospike_set: str
) -> Any:
    def make(**settings: Any) -> TestApp:
        app = pyramid_app(
            aerospike_hosts, aerospike_namespace, aerospike_set, **settings
        )
        return TestApp(validator(app))

    return make


@pytest.fixture
def browser(make_browser: Any) -> TestApp:
    return make_browser()


def test_request_session_provides_isession(
    aerospike_hosts: Hosts, aerospike_namespace: str, aerospike_set: str
) -> None:
    seen: list[Any] = []
    with Configurator(
        settings={PREFIX + "secret": SECRET, PREFIX + "hosts": aerospike_hosts}
    ) as config:
        config.include("aerospike_wsgi_session.pyramid")
        config.add_route("home", "/")
        config.add_view(
            lambda request: seen.append(request.session) or {},
            route_name="home",
            renderer="json",
        )
        app = config.make_wsgi_app()

    TestApp(validator(app)).get("/")

    assert isinstance(seen[0], PyramidSession)
    assert verifyObject(ISession, seen[0])


def test_login_flow_with_flash_messages(browser: TestApp) -> None:
    first = browser.get("/").json
    redirect = browser.post("/login", {"user": "ada"})
    page = browser.get("/").json
    again = browser.get("/").json

    assert first["new"] is True
    assert redirect.status_int == 302
    assert "session" in set_cookies(redirect)
    assert page["user"] == "ada"
    assert (page["flash"], page["notices"]) == (
        ["Welcome, ada"],
        ["Check your settings"],
    )
    assert (again["flash"], again["notices"]) == ([], ["Check your settings"])
    assert again["new"] is False
    assert again["created"] == page["created"]


def test_a_response_callback_can_read_the_session(browser: TestApp) -> None:
    browser.post("/login", {"user": "ada"})

    response = browser.get("/later")

    assert response.headers["X-User"] == "ada"


def test_what_a_response_callback_stores_is_saved(browser: TestApp) -> None:
    browser.post("/login", {"user": "ada"})

    browser.get("/later?what=tea")

    assert browser.get("/").json["keys"] == ["_f_notice", "remembered", "user"]


def test_a_new_session_started_by_a_response_callback_gets_its_cookie(
    browser: TestApp,
) -> None:
    response = browser.get("/later?what=tea")

    assert "session" in set_cookies(response)
    assert browser.get("/").json["keys"] == ["remembered"]


def test_logout_invalidates_the_session(browser: TestApp) -> None:
    browser.post("/login", {"user": "ada"})

    response = browser.get("/logout")

    assert response.json == {"user": None}
    assert set_cookies(response)["session"]["max-age"] == "0"
    assert browser.get("/").json["user"] is None


def test_a_csrf_protected_post_needs_the_token(browser: TestApp) -> None:
    token = browser.get("/form").json["csrf_token"]

    refused = browser.post("/transfer", {"amount": "10"}, status=400)
    accepted = browser.post("/transfer", {"amount": "10", "csrf_token": token})
    by_header = browser.post("/transfer", headers={"X-CSRF-Token": token})

    assert refused.status_int == 400
    assert accepted.json == {"done": True}
    assert by_header.json == {"done": True}


def test_a_token_from_another_session_is_refused(make_browser: Any) -> None:
    other_token = make_browser().get("/form").json["csrf_token"]
    browser = make_browser()
    browser.get("/form")

    browser.post("/transfer", {"csrf_token": other_token}, status=400)


def test_changed_saves_an_in_place_edit(make_browser: Any) -> None:
    browser = make_browser(detect_changes="false")
    browser.get("/cart", {"item": "apple"})

    browser.get("/cart", {"item": "pear"})
    told = browser.get("/cart", {"item": "plum", "tell": "yes"}).json

    assert told == {"cart": ["apple", "plum"]}
    assert browser.get("/cart", {"item": "fig"}).json == {
        "cart": ["apple", "plum", "fig"]
    }


def test_settings_are_converted(make_browser: Any) -> None:
    browser = make_browser(cookie_name="sid", max_age="1h", samesite="Strict")

    cookie = set_cookies(browser.post("/login", {"user": "ada"}))["sid"]

    assert (cookie["max-age"], cookie["samesite"]) == ("3600", "Strict")


def test_a_bad_setting_fails_at_include(make_browser: Any) -> None:
    with pytest.raises(ValueError, match=r"aerospike_session\.max_age"):
        make_browser(max_age="a while")


def test_a_view_that_fails_saves_nothing(browser: TestApp) -> None:
    browser.post("/login", {"user": "ada"})

    browser.get("/fail", status=500)

    assert browser.get("/").json["keys"] == ["_f_notice", "user"]


def test_a_change_made_while_streaming_is_saved(browser: TestApp) -> None:
    browser.post("/login", {"user": "ada"})

    assert browser.get("/stream").text == "first last"
    assert browser.get("/").json["keys"] == ["_f_notice", "streamed", "user"]


def test_aerospike_down_answers_503(aerospike_server: AerospikeServer) -> None:
    app = pyramid_app(aerospike_server.hosts, "test", "pyramid", retry_after="7")
    browser = TestApp(validator(app))
    browser.post("/login", {"user": "ada"})
    aerospike_server.stop()

    response = browser.get("/", status=503)

    assert response.headers["Retry-After"] == "7"


def test_a_save_that_fails_answers_503_and_keeps_the_session(
    aerospike_server: AerospikeServer,
) -> None:
    app = pyramid_app(aerospike_server.hosts, "test", "pyramid")
    browser = TestApp(validator(app))
    browser.post("/login", {"user": "ada"})
    aerospike_server.fail_next(1, 8, commands="write")

    response = browser.get("/later?what=tea", status=503)

    assert "Set-Cookie" not in response.headers
    assert response.body == UNAVAILABLE_BODY
    assert browser.get("/").json["keys"] == ["_f_notice", "user"]


PYRAMID_INI = """
[app:main]
use = call:tests.test_pyramid:paste_main
aerospike_session.hosts = {hosts}
aerospike_session.namespace = {namespace}
aerospike_session.set = {set_name}
aerospike_session.secret =
    {secret}
    {old_secret}
aerospike_session.httponly = false
aerospike_session.max_age = 2h
"""


def test_settings_from_a_pyramid_ini_file(tmp_path: Path, backend: Backend) -> None:
    ini = tmp_path / "pyramid.ini"
    ini.write_text(
        PYRAMID_INI.format(
            hosts=backend.hosts_text,
            namespace=backend.namespace,
            set_name=backend.set_name,
            secret=SECRET,
            old_secret=OLD_SECRET,
        )
    )
    browser = TestApp(validator(loadapp(f"config:{ini}")))

    cookie = set_cookies(browser.post("/login", {"user": "ada"}))["session"]

    assert (cookie["max-age"], cookie["httponly"]) == ("7200", "")
    assert browser.get("/").json["user"] == "ada"
