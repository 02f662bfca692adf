"""Security properties, through the middleware: timeouts, ids, keys, cookies, data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from wsgiref.validate import validator

import pytest
import webob
import webob.dec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webtest import TestApp

from aerospike_wsgi_session import AerospikeStore, SessionMiddleware
from aerospike_wsgi_session.signing import Signer
from aerospike_wsgi_session.testing import AerospikeServer, ManualClock

from .helpers import OLD_SECRET, SECRET, body_json, login_app, session_app, set_cookies


@pytest.fixture
def timed(aerospike_server: AerospikeServer) -> Iterator[Any]:
    """A factory of apps whose middleware and server share one manual clock."""
    store = AerospikeStore(set="sessions", hosts=aerospike_server.hosts)
    clock = aerospike_server.clock
    assert isinstance(clock, ManualClock)

    def make(**options: Any) -> TestApp:
        middleware = SessionMiddleware(
            validator(session_app), store, secret=SECRET, clock=clock, **options
        )
        return TestApp(validator(middleware))

    yield make
    store.close()


def test_idle_session_ends(timed: Any, aerospike_server: AerospikeServer) -> None:
    client = timed(idle_timeout=60)
    first = set_cookies(client.get("/set/name?value=ada"))["session"].value

    aerospike_server.clock.advance(50)
    assert body_json(client.get("/get/name")) == "ada"
    aerospike_server.clock.advance(50)
    assert body_json(client.get("/get/name")) == "ada"

    aerospike_server.clock.advance(61)
    assert body_json(client.get("/get/name")) is None
    second = set_cookies(client.get("/set/name?value=grace"))["session"].value
    assert second != first


def test_absolute_timeout_ends_even_an_active_session(
    timed: Any, aerospike_server: AerospikeServer
) -> None:
    client = timed(absolute_timeout=100)
    first = set_cookies(client.get("/set/name?value=ada"))["session"].value

    for _ in range(3):
        aerospike_server.clock.advance(30)
        client.get("/incr/visits")
    aerospike_server.clock.advance(11)

    assert body_json(client.get("/get/name")) is None
    second = set_cookies(client.get("/set/name?value=grace"))["session"].value
    assert second != first


def test_writes_do_not_extend_the_absolute_limit(
    timed: Any, aerospike_server: AerospikeServer
) -> None:
    client = timed(absolute_timeout=100, max_age=3600)
    client.get("/set/name?value=ada")
    aerospike_server.clock.advance(90)
    client.get("/set/name?value=grace")

    aerospike_server.clock.advance(11)
    aerospike_server.purge_expired()

    assert aerospike_server.stats["put"] == 1
    assert body_json(client.get("/get/name")) is None


def test_creation_time_cannot_be_written_through_the_mapping(
    make_app: Any, store: AerospikeStore
) -> None:
    @webob.dec.wsgify
    def app(request: webob.Request) -> webob.Response:
        session = request.environ["aerospike.session"]
        session["_created"] = 0
        session["created"] = 0
        return webob.Response(json=session.created)

    client = make_app()
    cookie = set_cookies(client.get("/set/a?value=1"))["session"].value
    created = load(store, cookie).created

    client.app = make_app(app).app
    assert body_json(client.get("/")) == created
    assert load(store, cookie).created == created


def load(store: AerospikeStore, cookie: str) -> Any:
    signer = Signer(SECRET)
    verified = signer.unsign(cookie)
    assert verified is not None
    return store.load(signer.record_key(verified[0]))


def test_database_holds_no_usable_session_id(client: TestApp, store: Any) -> None:
    cookie = set_cookies(client.get("/set/name?value=ada"))["session"].value
    session_id = cookie.partition(".")[0]

    dump = store.client.scan(store.namespace, store.set).results()

    assert len(dump) == 1
    key, _, bins = dump[0]
    assert key[2] is None
    assert session_id not in repr(bins)
    assert session_id.encode() not in bytes(key[3])


def test_a_record_not_written_as_a_session_is_not_loaded(
    client: TestApp, store: AerospikeStore
) -> None:
    planted_id = "q" * 43
    record_key = Signer(SECRET).record_key(planted_id)
    store.client.put(store.key(record_key), {"data": {"admin": "true"}})
    client.set_cookie("session", Signer(SECRET).sign(planted_id))

    assert body_json(client.get("/get/admin")) is None


def test_sessions_of_a_user_can_all_be_ended(
    make_app: Any, store: AerospikeStore
) -> None:
    laptop, phone = make_app(login_app), make_app(login_app)
    other = make_app(login_app)
    laptop.get("/?user=alice")
    phone.get("/?user=alice")
    other.get("/?user=bob")

    assert len(store.user_sessions("alice")) == 2
    assert store.destroy_user("alice") == 2

    readers = [make_app() for _ in range(3)]
    for reader, browser in zip(readers, (laptop, phone, other), strict=True):
        reader.cookiejar = browser.cookiejar
    assert [body_json(r.get("/get/name")) for r in readers] == [None, None, "bob"]
    assert store.user_sessions("alice") == []


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("short", id="short"),
        pytest.param(["x" * 40, "too-short"], id="short-in-list"),
        pytest.param([], id="empty-list"),
    ],
)
def test_weak_secrets_are_refused(store: AerospikeStore, secret: Any) -> None:
    with pytest.raises(ValueError) as info:
        SessionMiddleware(session_app, store, secret=secret)

    assert "too-short" not in str(info.value)


def test_secret_never_shows(store: AerospikeStore) -> None:
    middleware = SessionMiddleware(session_app, store, secret=SECRET)

    shown = repr(middleware) + repr(middleware.manager.signer) + repr(vars(middleware))

    assert SECRET not in shown


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"samesite": "None", "secure": False}, "SameSite=None"),
        ({"partitioned": True, "secure": False}, "artitioned"),
        ({"cookie_name": "__Host-sid", "domain": "example.com"}, "__Host-"),
        ({"cookie_name": "__Host-sid", "path": "/app", "secure": True}, "__Host-"),
        ({"samesite": "sometimes"}, "samesite"),
    ],
)
def test_unsafe_cookie_settings_are_refused(
    store: AerospikeStore, options: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        SessionMiddleware(session_app, store, secret=SECRET, **options)


def test_logout_cookie_repeats_its_attributes(make_app: Any) -> None:
    client = make_app(
        secure=True, domain="example.com", path="/", samesite="None", partitioned=True
    )
    client.get("/set/name?value=ada")

    header = client.get("/invalidate").headers["Set-Cookie"]

    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"max-age", "domain", "path", "secure", "samesite", "partitioned"} <= (
        attributes
    )


def test_disagreeing_duplicate_cookies_mean_no_session(client: TestApp) -> None:
    cookie = set_cookies(client.get("/set/name?value=ada"))["session"].value
    other = Signer(SECRET).sign("z" * 43)

    fresh = client.get(
        "/get/name", headers={"Cookie": f"session={cookie}; session={other}"}
    )
    same = client.get(
        "/get/name", headers={"Cookie": f"session={cookie}; session={cookie}"}
    )

    assert body_json(fresh) is None
    assert body_json(same) == "ada"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(header=st.text(max_size=300) | st.just("session=" + "x" * 10_000))
def test_any_cookie_header_is_harmless(
    header: str, aerospike_server: AerospikeServer, raw_app: Any
) -> None:
    aerospike_server.stats.clear()
    environ = {"HTTP_COOKIE": header.encode("utf-8", "replace").decode("latin-1")}

    response = raw_app.get("/get/name", extra_environ=environ)

    assert response.status_int == 200
    assert body_json(response) is None
    assert aerospike_server.stats["get"] == 0


PLANTED_ID = "p" * 43
PLANTED = Signer(SECRET).sign(PLANTED_ID)
URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def near_misses(value: str) -> st.SearchStrategy[str]:
    """*value* with one character changed, cut short, or with more after it."""
    spots = st.tuples(st.integers(0, len(value) - 1), st.sampled_from(URLSAFE + "."))
    flipped = spots.filter(lambda spot: value[spot[0]] != spot[1]).map(
        lambda spot: value[: spot[0]] + spot[1] + value[spot[0] + 1 :]
    )
    cut = st.integers(1, len(value) - 1).map(lambda length: value[:length])
    longer = st.text(URLSAFE + ".", min_size=1, max_size=20).map(value.__add__)
    return flipped | cut | longer


WELL_SHAPED = st.from_regex(r"\A[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}\Z", fullmatch=True)
FORGED = WELL_SHAPED | near_misses(PLANTED)
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def planted(make_app: Any) -> str:
    """The cookie of a stored session whose id the tests know: ``PLANTED``."""
    client = make_app(id_generator=lambda: PLANTED_ID)
    assert set_cookies(client.get("/set/name?value=ada"))["session"].value == PLANTED
    return PLANTED


def store_calls(store: AerospikeStore) -> dict[str, float]:
    """How often each store call was made since the last reset (all are timed)."""
    counts = store.metrics.snapshot().items()
    pattern = re.compile(r"latency\.(\w+)\.count")
    return {m[1]: n for name, n in counts if (m := pattern.fullmatch(name))}


@FUZZ
@given(value=FORGED)
def test_forged_cookie_is_refused_before_aerospike(
    value: str, planted: str, make_app: Any, store: AerospikeStore
) -> None:
    store.metrics.reset()

    response = make_app().get("/get/name", headers={"Cookie": f"session={value}"})

    assert response.status_int == 200
    assert body_json(response) is None
    assert set_cookies(response) == {}
    assert store_calls(store) == {}


@FUZZ
@given(value=FORGED)
def test_forged_cookie_id_is_never_adopted(
    value: str, planted: str, make_app: Any, store: AerospikeStore
) -> None:
    store.metrics.reset()

    cookie = {"Cookie": f"session={value}"}
    response = make_app().get("/set/name?value=eve", headers=cookie)

    issued = set_cookies(response)["session"].value
    assert response.status_int == 200
    assert issued.partition(".")[0] not in (value.partition(".")[0], PLANTED_ID)
    assert store_calls(store) == {"create": 1}


def test_a_forged_header_sent_again_is_refused_again(
    planted: str, make_app: Any, store: AerospikeStore
) -> None:
    client = make_app()
    forged = {"Cookie": f"session={PLANTED_ID}.{'A' * 43}"}
    store.metrics.reset()

    answers = [body_json(client.get("/get/name", headers=forged)) for _ in range(3)]

    assert answers == [None, None, None]
    assert store.metrics.snapshot()["misses.bad_signature"] == 3
    assert store_calls(store) == {}


def test_a_header_that_verified_once_still_needs_its_record(
    planted: str, make_app: Any
) -> None:
    client = make_app()
    header = {"Cookie": f"other=1; session={planted}"}
    assert body_json(client.get("/get/name", headers=header)) == "ada"

    client.get("/invalidate", headers=header)

    assert body_json(client.get("/get/name", headers=header)) is None


def test_an_old_key_cookie_is_reissued_until_the_browser_takes_the_new_one(
    make_app: Any,
) -> None:
    old = set_cookies(make_app(secret=OLD_SECRET).get("/set/name?value=ada"))
    rotated = make_app(secret=[SECRET, OLD_SECRET], record_key_secret=OLD_SECRET)
    header = {"Cookie": f"session={old['session'].value}"}

    reissued = [set_cookies(rotated.get("/get/name", headers=header)) for _ in range(3)]

    assert all("session" in cookies for cookies in reissued)


@pytest.fixture
def raw_app(aerospike_server: AerospikeServer) -> Iterator[TestApp]:
    store = AerospikeStore(set="fuzz", hosts=aerospike_server.hosts)
    middleware = SessionMiddleware(validator(session_app), store, secret=SECRET)
    yield TestApp(validator(middleware))
    store.close()
