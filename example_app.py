"""A small shop with sessions in Aerospike: ``python example_app.py``.

It counts your visits, keeps a cart, lets you log in and out, and shows
one-time flash messages. Sessions live in the embedded Aerospike server that
ships with the package, unless ``AEROSPIKE_HOSTS`` names a real cluster
(``AEROSPIKE_NAMESPACE`` picks the namespace, ``test`` by default).
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import secrets
from typing import Any
from wsgiref.simple_server import make_server

import webob
import webob.dec
import webob.exc

from aerospike_wsgi_session import AerospikeStore, Session, SessionMiddleware
from aerospike_wsgi_session.testing import AerospikeServer

logger = logging.getLogger("example_app")

PRODUCTS = ("apple", "pear", "plum")

PAGE = """<!doctype html>
<title>Aerospike session shop</title>
<h1>Hello, {user}</h1>
{flash}
<p>Visits to this page: {visits}.</p>
<p>Your cart: {cart}</p>
<form method="post" action="/cart">{buttons}</form>
<form method="post" action="{auth_action}">{auth_field}
<button>{auth_label}</button></form>
"""


def flash(session: Session, message: str) -> None:
    """Queue a message for the next page shown."""
    session.setdefault("flash", []).append(message)


def render(session: Session) -> str:
    session["visits"] = session.get("visits", 0) + 1
    messages = session.pop("flash", [])
    user = session.get("user")
    buttons = "".join(
        f'<button name="item" value="{name}">add {name}</button>' for name in PRODUCTS
    )
    return PAGE.format(
        user=html.escape(user or "stranger"),
        flash="".join(f"<p><em>{html.escape(m)}</em></p>" for m in messages),
        visits=session["visits"],
        cart=html.escape(", ".join(session.get("cart", [])) or "empty"),
        buttons=buttons,
        auth_action="/logout" if user else "/login",
        auth_field="" if user else '<input name="user" placeholder="your name">',
        auth_label="log out" if user else "log in",
    )


@webob.dec.wsgify
def shop(request: webob.Request) -> Any:
    session: Session = request.environ["aerospike.session"]
    if request.method == "GET" and request.path_info == "/":
        return webob.Response(render(session))
    if request.method != "POST":
        return webob.exc.HTTPNotFound()

    if request.path_info == "/cart" and request.POST.get("item") in PRODUCTS:
        # An in-place edit: the middleware notices it on its own.
        session.setdefault("cart", []).append(request.POST["item"])
    elif request.path_info == "/login":
        # A new id at login, so that an id planted before cannot be used after.
        session.regenerate()
        session["user"] = request.POST.get("user", "").strip()[:40] or "guest"
        flash(session, f"Welcome, {session['user']}!")
    elif request.path_info == "/logout":
        session.invalidate()
        flash(session, "You are logged out.")
    return webob.exc.HTTPSeeOther(location="/")


def build_app(hosts: Any, namespace: str, secret: str) -> SessionMiddleware:
    """The shop behind the session middleware."""
    store = AerospikeStore(namespace=namespace, set="example", hosts=hosts)
    return SessionMiddleware(shop, store, secret=secret, max_age=3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    secret = os.environ.get("SESSION_SECRET") or secrets.token_urlsafe(32)
    namespace = os.environ.get("AEROSPIKE_NAMESPACE", "test")
    hosts = os.environ.get("AEROSPIKE_HOSTS", "").strip()
    embedded = None
    if hosts:
        logger.info("Sessions in the Aerospike cluster at %s", hosts)
    else:
        embedded = AerospikeServer().start()
        hosts = ",".join(f"{host}:{port}" for host, port in embedded.hosts)
        logger.info("Sessions in the embedded Aerospike server at %s", hosts)

    app = build_app(hosts, namespace, secret)
    with make_server("127.0.0.1", args.port, app) as server:
        logger.info("Serving on http://127.0.0.1:%d/ (Ctrl-C stops)", args.port)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            app.manager.store.close()
            if embedded is not None:
                embedded.stop()


if __name__ == "__main__":
    main()
