"""The session mapping as an application sees it, through the middleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import webob
import webob.dec
from webtest import TestApp

from aerospike_wsgi_session import Session

from .helpers import body_json, set_cookies

Edit = Callable[[Session], Any]


def app_running(edit: Edit) -> Any:
    """An app that seeds ``{"a": 1, "b": 2}`` on ``/seed`` and runs ``edit``."""

    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        session = request.environ["aerospike.session"]
        if request.path_info == "/seed":
            session.update(a=1, b=2)
            return webob.Response("seeded")
        if request.path_info == "/show":
            return webob.Response(json=dict(session))
        return webob.Response(json=edit(session))

    return app


def test_a_session_not_used_yet_reports_nothing(make_app: Any) -> None:
    seen: dict[str, Any] = {}

    def look(session: Session) -> None:
        seen.update(accessed=session.accessed, modified=session.modified)

    client = make_app(app_running(look))
    client.get("/edit")

    assert seen == {"accessed": False, "modified": False}


@pytest.mark.parametrize(
    ("edit", "answer", "left"),
    [
        (lambda s: s.pop("a"), 1, {"b": 2}),
        (lambda s: s.setdefault("c", 3), 3, {"a": 1, "b": 2, "c": 3}),
        (lambda s: s.update(b=20), None, {"a": 1, "b": 20}),
        (lambda s: s.popitem()[0] in "ab", True, None),
        (lambda s: s.clear(), None, {}),
    ],
    ids=["pop", "setdefault", "update", "popitem", "clear"],
)
def test_mapping_methods_change_the_stored_session(
    make_app: Any, edit: Edit, answer: Any, left: dict[str, Any] | None
) -> None:
    client: TestApp = make_app(app_running(edit))
    client.get("/seed")

    assert body_json(client.get("/edit")) == answer
    shown = body_json(client.get("/show"))
    assert len(shown) == 1 if left is None else shown == left


def test_reading_methods_change_nothing(make_app: Any) -> None:
    def read(session: Session) -> list[Any]:
        found = [len(session), "a" in session, session.get("zz"), sorted(session)]
        return [*found, session.modified]

    client: TestApp = make_app(app_running(read))
    client.get("/seed")
    response = client.get("/edit")

    assert body_json(response) == [2, True, None, ["a", "b"], False]
    assert "session" not in set_cookies(response)


def test_regenerate_without_data_starts_empty_under_a_new_id(make_app: Any) -> None:
    def regenerate_empty(session: Session) -> bool:
        session.regenerate(keep_data=False)
        session["fresh"] = True
        return session.new

    client: TestApp = make_app(app_running(regenerate_empty))
    client.get("/seed")
    old_cookie = client.cookies["session"]

    assert body_json(client.get("/edit")) is True
    assert client.cookies["session"] != old_cookie
    assert body_json(client.get("/show")) == {"fresh": True}


def test_session_keys_must_be_strings(make_app: Any) -> None:
    def set_number_key(session: Session) -> str:
        with pytest.raises(TypeError, match="strings"):
            session[1] = "one"  # type: ignore[index]
        return "refused"

    client: TestApp = make_app(app_running(set_number_key))

    response = client.get("/edit")

    assert body_json(response) == "refused"
    assert "session" not in set_cookies(response)
