"""The middleware end to end: requests through WebTest, sessions in Aerospike."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest
import webob
import webob.dec

from aerospike_wsgi_session import (
    AerospikeStore,
    SessionTooLargeError,
    UnencodableValueError,
)
from aerospike_wsgi_session.signing import Signer

from .helpers import OLD_SECRET, SECRET, body_json, set_cookies


def stored_data(store: AerospikeStore, cookie_value: str) -> dict[str, Any] | None:
    """What the store holds for the session a cookie names."""
    verified = Signer(SECRET).unsign(cookie_value)
    assert verified is not None
    record = store.load(Signer(SECRET).record_key(verified[0]))
    return None if record is None else record.data


def test_untouched_request_gets_no_cookie(client: Any) -> None:
    response = client.get("/untouched")

    assert response.text == "ok"
    assert "Set-Cookie" not in response.headers
    assert "Vary" not in response.headers


def test_reading_a_new_session_stores_nothing(client: Any, store: Any) -> None:
    response = client.get("/get/count")

    assert body_json(response) is None
    assert "Set-Cookie" not in response.headers
    assert response.headers["Vary"] == "Cookie"
    assert store.client.query(store.namespace, store.set).results() == []


def test_writing_creates_the_session_and_its_cookie(client: Any, store: Any) -> None:
    response = client.get("/set/name?value=ada")

    cookie = set_cookies(response)["session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert not cookie["secure"]
    assert response.headers["Cache-Control"] == "private"
    assert stored_data(store, cookie.value) == {"name": "ada"}


def test_session_round_trips_across_requests(client: Any) -> None:
    client.get("/incr/count")
    client.get("/incr/count")

    assert body_json(client.get("/get/count")) == 2


def test_unchanged_session_is_not_rewritten_nor_recookied(client: Any) -> None:
    client.get("/set/name?value=ada")

    response = client.get("/get/name")

    assert body_json(response) == "ada"
    assert "Set-Cookie" not in response.headers


def test_https_request_gets_a_secure_cookie(client: Any) -> None:
    response = client.get("/set/a?value=1", extra_environ={"wsgi.url_scheme": "https"})

    assert set_cookies(response)["session"]["secure"] is True


def test_forwarded_proto_is_trusted_only_when_asked(make_app: Any) -> None:
    headers = {"X-Forwarded-Proto": "https"}
    distrustful = make_app().get("/set/a?value=1", headers=headers)
    trusting = make_app(trust_proxy=True).get("/set/a?value=1", headers=headers)

    assert not set_cookies(distrustful)["session"]["secure"]
    assert set_cookies(trusting)["session"]["secure"] is True


def test_nested_edit_is_saved(client: Any) -> None:
    client.get("/append/cart?value=apple")
    client.get("/append/cart?value=pear")

    assert body_json(client.get("/get/cart")) == ["apple", "pear"]


def test_nested_edit_needs_changed_without_detection(make_app: Any) -> None:
    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        session = request.environ["aerospike.session"]
        session.setdefault("cart", [])
        session["cart"].append("apple")
        if "mark" in request.GET:
            session.changed()
        return webob.Response(json=session["cart"])

    client = make_app(app, detect_changes=False)
    assert body_json(client.get("/")) == ["apple"]
    assert body_json(client.get("/")) == ["apple", "apple"]
    assert body_json(client.get("/")) == ["apple", "apple"]

    assert body_json(client.get("/?mark=1")) == ["apple", "apple"]
    assert body_json(client.get("/")) == ["apple", "apple", "apple"]


def test_deleting_a_key_is_saved(client: Any) -> None:
    client.get("/set/a?value=1")
    client.get("/set/b?value=2")

    client.get("/delete/a")

    assert body_json(client.get("/keys")) == ["b"]


def test_a_value_that_cannot_be_read_leaves_the_rest_of_the_session(
    client: Any, store: Any, caplog: Any
) -> None:
    client.get("/set/name?value=ada")
    client.get("/set/cart?value=apple")
    session_id, _ = Signer(SECRET).unsign(client.cookies["session"])
    key = store.key(Signer(SECRET).record_key(session_id))
    store.client.put(key, {"data": {"name": '"ada"', "cart": "{not json"}})

    assert body_json(client.get("/get/name")) == "ada"
    assert body_json(client.get("/get/cart")) is None
    assert "session key 'cart': invalid JSON" in caplog.text
    client.get("/set/cart?value=pear")
    assert stored_data(store, client.cookies["session"]) == {
        "name": "ada",
        "cart": "pear",
    }


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param("garbage", id="malformed"),
        pytest.param("", id="empty"),
        pytest.param("x" * 43, id="unsigned-id"),
        pytest.param(Signer(SECRET).sign("a" * 43)[:-1] + "A", id="bad-signature"),
        pytest.param(Signer("another-secret-" * 3).sign("b" * 43), id="other-key"),
    ],
)
def test_bad_cookie_means_no_session(client: Any, cookie: str) -> None:
    client.set_cookie("session", cookie)

    assert body_json(client.get("/get/name")) is None
    response = client.get("/set/name?value=ada")
    assert set_cookies(response)["session"].value != cookie


def test_well_signed_unknown_id_is_never_adopted(client: Any, store: Any) -> None:
    planted = Signer(SECRET).sign("p" * 43)
    client.set_cookie("session", planted)

    response = client.get("/set/name?value=ada")

    issued = set_cookies(response)["session"].value
    assert issued != planted
    assert stored_data(store, issued) == {"name": "ada"}
    assert stored_data(store, planted) is None


def test_invalidate_ends_the_session(client: Any, store: Any) -> None:
    first = set_cookies(client.get("/set/name?value=ada"))["session"].value

    response = client.get("/invalidate")

    expired = set_cookies(response)["session"]
    assert expired.value == ""
    assert expired["max-age"] == "0"
    assert stored_data(store, first) is None
    assert body_json(client.get("/get/name")) is None


def test_regenerate_moves_data_to_a_new_id(client: Any, store: Any) -> None:
    first = set_cookies(client.get("/set/name?value=ada"))["session"].value

    response = client.get("/regenerate")

    second = set_cookies(response)["session"].value
    assert second != first
    assert stored_data(store, first) is None
    assert stored_data(store, second) == {"name": "ada"}
    assert body_json(client.get("/get/name")) == "ada"


def test_old_key_cookie_is_reissued_with_the_new_key(make_app: Any, store: Any) -> None:
    old_client = make_app(secret=OLD_SECRET)
    old = set_cookies(old_client.get("/set/name?value=ada"))["session"].value

    rotated = make_app(secret=[SECRET, OLD_SECRET], record_key_secret=OLD_SECRET)
    rotated.set_cookie("session", old)
    response = rotated.get("/get/name")

    assert body_json(response) == "ada"
    reissued = set_cookies(response)["session"].value
    assert reissued != old
    assert Signer(SECRET).unsign(reissued) == (Signer(OLD_SECRET).unsign(old)[0], True)


def test_cookie_options_are_applied(make_app: Any) -> None:
    client = make_app(
        cookie_name="sid",
        max_age=600,
        path="/app",
        domain="example.com",
        secure=True,
        samesite="Strict",
        httponly=False,
    )

    response = client.get("/set/a?value=1")

    cookie = set_cookies(response)["sid"]
    assert (cookie["max-age"], cookie["path"], cookie["domain"]) == (
        "600",
        "/app",
        "example.com",
    )
    assert cookie["secure"] is True
    assert cookie["samesite"] == "Strict"
    assert not cookie["httponly"]


def test_partitioned_cookie(make_app: Any) -> None:
    client = make_app(secure=True, samesite="None", partitioned=True)

    header = client.get("/set/a?value=1").headers["Set-Cookie"]

    attributes = [part.strip().lower() for part in header.split(";")]
    assert "partitioned" in attributes
    assert "samesite=none" in attributes


def test_environ_key_is_configurable(make_app: Any) -> None:
    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        request.environ["my.session"]["seen"] = True
        return webob.Response("ok")

    response = make_app(app, environ_key="my.session").get("/")

    assert "session" in set_cookies(response)


def test_vary_is_merged_with_the_app_header(make_app: Any) -> None:
    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        request.environ["aerospike.session"].get("x")
        response = webob.Response("ok")
        response.vary = ("Accept-Encoding",)
        return response

    response = make_app(app).get("/")

    assert response.headers.getall("Vary") == ["Accept-Encoding, Cookie"]


def test_public_cache_control_is_made_private(make_app: Any) -> None:
    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        request.environ["aerospike.session"]["x"] = 1
        return webob.Response("ok", cache_control="public, max-age=60")

    response = make_app(app).get("/")

    assert response.headers["Cache-Control"] == "private, max-age=60"


def test_oversized_session_fails_clearly_and_keeps_the_old_one(
    client: Any, store: Any
) -> None:
    first = set_cookies(client.get("/set/name?value=ada"))["session"].value

    with pytest.raises(SessionTooLargeError):
        client.post("/set/big", json.dumps("x" * (2 << 20)), content_type="text/json")

    assert stored_data(store, first) == {"name": "ada"}
    assert body_json(client.get("/get/name")) == "ada"


def test_oversized_new_session_sets_no_cookie(make_app: Any, store: Any) -> None:
    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        request.environ["aerospike.session"]["big"] = "x" * (2 << 20)
        return webob.Response("ok")

    client = make_app(app)
    with pytest.raises(SessionTooLargeError):
        client.get("/")

    assert client.cookies == {}


def test_unencodable_value_names_the_key_and_writes_nothing(
    make_app: Any, store: Any
) -> None:
    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        session = request.environ["aerospike.session"]
        session["name"] = "grace"
        session["when"] = object()
        return webob.Response("ok")

    client = make_app()
    first = set_cookies(client.get("/set/name?value=ada"))["session"].value
    client.app = make_app(app).app

    with pytest.raises(UnencodableValueError, match="'when'"):
        client.get("/")

    assert stored_data(store, first) == {"name": "ada"}


def test_logs_never_show_cookie_or_id(client: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger="aerospike_wsgi_session")
    forged = Signer(OLD_SECRET).sign("f" * 43)

    cookie = set_cookies(client.get("/set/name?value=ada"))["session"].value
    renewed = set_cookies(client.get("/regenerate"))["session"].value
    client.get("/invalidate")
    client.set_cookie("session", forged)
    client.get("/get/name")

    hidden = {"ada", forged, *cookie.split("."), *renewed.split(".")}
    shown = [r.getMessage() for r in caplog.records]
    assert len(shown) >= 4
    assert [(s, m) for s in hidden for m in shown if s in m] == []


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param("not-a-session-cookie", id="malformed"),
        pytest.param(Signer(OLD_SECRET).sign("f" * 43), id="other-key"),
    ],
)
def test_rejected_cookie_is_logged_at_debug_without_its_value(
    client: Any, caplog: Any, cookie: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="aerospike_wsgi_session")
    client.set_cookie("session", cookie)

    client.get("/get/name")

    rejected = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert [r.levelno for r in rejected] == [logging.DEBUG]
    assert [r for r in rejected if cookie in r.getMessage()] == []


def record_ttl(store: AerospikeStore, cookie_value: str) -> int:
    signer = Signer(SECRET)
    verified = signer.unsign(cookie_value)
    assert verified is not None
    _, meta, _ = store.client.get(store.key(signer.record_key(verified[0])))
    return int(meta["ttl"])


def test_max_age_sets_the_record_ttl(make_app: Any, store: AerospikeStore) -> None:
    client = make_app(max_age=600)

    cookie = set_cookies(client.get("/set/a?value=1"))["session"]

    assert cookie["max-age"] == "600"
    assert 590 <= record_ttl(store, cookie.value) <= 600


def test_store_ttl_wins_over_max_age(
    make_app: Any, store: AerospikeStore, aerospike_client: Any
) -> None:
    own = AerospikeStore(
        namespace=store.namespace, set=store.set, client=aerospike_client, ttl=120
    )
    client = make_app(store=own, max_age=600)

    cookie = set_cookies(client.get("/set/a?value=1"))["session"]

    assert 110 <= record_ttl(store, cookie.value) <= 120


#: The TTL Aerospike reports for a record that never expires.
NEVER = 0xFFFFFFFF


def test_store_ttl_zero_leaves_the_namespace_default(
    make_app: Any, store: AerospikeStore, aerospike_client: Any
) -> None:
    own = AerospikeStore(
        namespace=store.namespace, set=store.set, client=aerospike_client, ttl=0
    )
    default = own.check()["default_ttl"] or NEVER
    client = make_app(store=own, max_age=600)

    cookie = set_cookies(client.get("/set/a?value=1"))["session"]

    assert cookie["max-age"] == "600"
    assert default - 10 <= record_ttl(store, cookie.value) <= default


class DocumentMapper:
    """Keeps the whole session as JSON text in one bin, ``doc``."""

    def to_record(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"doc": json.dumps(dict(data), sort_keys=True)}

    def from_record(self, bins: Mapping[str, Any]) -> dict[str, Any]:
        return dict(json.loads(bins["doc"]))


def test_a_custom_mapper_lays_out_the_records(
    make_app: Any, store: AerospikeStore, aerospike_client: Any
) -> None:
    own = AerospikeStore(
        namespace=store.namespace,
        set=store.set,
        client=aerospike_client,
        mapper=DocumentMapper(),
    )
    client = make_app(store=own)
    cookie = set_cookies(client.get("/set/name?value=ada"))["session"].value
    client.get("/set/city?value=paris")

    bins = record_bins(store, cookie)
    assert json.loads(bins["doc"]) == {"city": "paris", "name": "ada"}
    assert "data" not in bins
    assert body_json(client.get("/get/name")) == "ada"


def record_bins(store: AerospikeStore, cookie_value: str) -> dict[str, Any]:
    signer = Signer(SECRET)
    verified = signer.unsign(cookie_value)
    assert verified is not None
    _, _, bins = store.client.get(store.key(signer.record_key(verified[0])))
    return dict(bins)


def test_a_change_resends_a_max_age_cookie(make_app: Any) -> None:
    client = make_app(max_age=600)
    first = set_cookies(client.get("/set/a?value=1"))["session"].value

    changed = set_cookies(client.get("/set/a?value=2"))
    unchanged = set_cookies(client.get("/get/a"))

    assert changed["session"].value == first
    assert unchanged == {}


def test_rolling_extends_a_session_that_is_only_read(
    make_app: Any, store: AerospikeStore
) -> None:
    client = make_app(max_age=600, rolling=True, rolling_interval=0)
    first = set_cookies(client.get("/set/a?value=1"))["session"].value
    signer = Signer(SECRET)
    key = store.key(signer.record_key(signer.unsign(first)[0]))  # type: ignore[index]
    generation = store.client.get(key)[1]["gen"]

    response = client.get("/get/a")

    assert set_cookies(response)["session"]["max-age"] == "600"
    assert store.client.get(key)[1]["gen"] == generation + 1
    assert body_json(client.get("/get/a")) == "1"


def test_rolling_waits_for_its_interval(make_app: Any) -> None:
    client = make_app(max_age=600, rolling=True, rolling_interval=300)
    client.get("/set/a?value=1")

    assert set_cookies(client.get("/get/a")) == {}
