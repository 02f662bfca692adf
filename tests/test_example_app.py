"""The example app: the README's first command, and the shop's story."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
from webtest import TestApp

from .helpers import SECRET

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import example_app  # noqa: E402


@pytest.fixture
def shop(aerospike_hosts: Any, aerospike_namespace: str) -> Any:
    app = example_app.build_app(aerospike_hosts, aerospike_namespace, SECRET)
    yield TestApp(validator(app))
    app.manager.store.clear()
    app.manager.store.close()


def test_visits_cart_login_and_logout(shop: TestApp) -> None:
    assert "Visits to this page: 1." in shop.get("/").text
    shop.post("/cart", {"item": "pear"}).follow()
    page = shop.post("/cart", {"item": "plum"}).follow()
    assert "Your cart: pear, plum" in page.text

    before = shop.cookies["session"]
    page = shop.post("/login", {"user": "Ada"}).follow()
    assert shop.cookies["session"] != before
    assert "Hello, Ada" in page.text
    assert "Welcome, Ada!" in page.text
    assert "Welcome" not in shop.get("/").text

    page = shop.post("/logout").follow()
    assert "Hello, stranger" in page.text
    assert "You are logged out." in page.text
    assert "Your cart: empty" in page.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_running_the_script_serves_the_shop() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEROSPIKE_")}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "example_app.py"), "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        page = fetch_when_up(f"http://127.0.0.1:{port}/")
    finally:
        process.terminate()
        _, log = process.communicate(timeout=10)

    assert "Visits to this page: 1." in page
    assert "embedded Aerospike server" in log


def fetch_when_up(url: str, seconds: float = 15.0) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
