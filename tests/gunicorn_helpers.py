"""Real gunicorn processes for the tests, and a cookie-keeping HTTP client.

:func:`serve` starts ``python -m gunicorn`` on a free loopback port, waits
until every worker has booted and the server answers, and stops it by its
pid afterwards: SIGTERM, a bounded wait, then SIGKILL of its process group.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from gunicorn.config import KNOWN_SETTINGS

ROOT = Path(__file__).resolve().parent.parent

BOOT_ATTEMPTS = 300
BOOT_PAUSE = 0.05
STOP_WAIT = 10.0
REQUEST_TIMEOUT = 15.0


class GunicornError(RuntimeError):
    """gunicorn did not come up; the message holds the end of its log."""


@dataclass
class Gunicorn:
    """A running gunicorn master."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    command: list[str]

    @property
    def preloaded(self) -> bool:
        """Whether ``--preload`` made the master load the app before forking."""
        return "--preload" in self.command

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(
    args: list[str],
    log: Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    chdir: Path = ROOT,
) -> Iterator[Gunicorn]:
    """Run gunicorn with ``args`` (and ``--workers``) until the block ends.

    :param args: gunicorn's arguments, without ``--bind`` and ``--workers``.
    :param log: where gunicorn's output goes.
    :param env: variables added to this process's environment.
    :param chdir: the directory gunicorn imports the application from.
    """
    server = start(args, log, workers=workers, env=env, chdir=chdir)
    try:
        wait_until_ready(server, workers)
        yield server
    finally:
        stop(server)


def start(
    args: list[str],
    log: Path,
    *,
    workers: int,
    env: Mapping[str, str] | None,
    chdir: Path,
) -> Gunicorn:
    """Start gunicorn in a process group of its own, on a free port."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers), "--chdir", str(chdir)]
    command += [*_no_control_socket(), *args]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Gunicorn(process, port, log, command)


def _no_control_socket() -> list[str]:
    # gunicorn 27 opens a control socket at one path in the home directory,
    # which the tests' servers would share; older ones have none.
    names = {setting.name for setting in KNOWN_SETTINGS}
    return ["--no-control-socket"] if "control_socket_disable" in names else []


def wait_until_ready(server: Gunicorn, workers: int) -> None:
    """Wait, boundedly, until ``workers`` workers booted and ``/ping`` answers."""
    for _ in range(BOOT_ATTEMPTS):
        if server.process.poll() is not None:
            raise GunicornError(f"gunicorn exited:\n{server.log_text()[-3000:]}")
        booted = server.log_text().count("Booting worker")
        if booted >= workers and _answers(server.port):
            return
        time.sleep(BOOT_PAUSE)
    raise GunicornError(f"gunicorn did not get ready:\n{server.log_text()[-3000:]}")


def _answers(port: int) -> bool:
    try:
        return Browser(port).get("/ping").status == 200
    except OSError:
        return False


def stop(server: Gunicorn) -> None:
    """SIGTERM the master, wait a bounded time, then kill its whole group."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            # The group (the master's pid) holds its workers too.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_WAIT)


@dataclass
class Reply:
    """One HTTP response, read whole."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def worker(self) -> int:
        """The pid of the worker that answered (the test app's header)."""
        return int(self.headers["X-Worker-Pid"])

    def set_cookies(self) -> dict[str, Morsel[str]]:
        """The cookies the response sets, by name, parsed."""
        jar: SimpleCookie = SimpleCookie()
        for header in self.headers.get_all("Set-Cookie") or []:
            jar.load(header)
        return dict(jar)


@dataclass
class Browser:
    """An HTTP client that keeps cookies.

    Each request opens a connection of its own, unless ``keep_alive`` is
    set: then one connection carries the requests, opened again only after
    the server closed it (gunicorn's sync workers close it after each
    response). Close a keep-alive browser, or use it as a context manager.
    """

    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    keep_alive: bool = False
    _connection: http.client.HTTPConnection | None = field(
        default=None, init=False, repr=False
    )

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, form: Mapping[str, str] | None = None) -> Reply:
        return self.request("POST", path, urlencode(form or {}).encode())

    def request(self, method: str, path: str, body: bytes | None = None) -> Reply:
        connection = self._open()
        try:
            connection.request(method, path, body, self._headers(body))
            response = connection.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        except BaseException:
            self.close()
            raise
        if not self.keep_alive:
            self.close()
        self._keep_cookies(reply)
        return reply

    def close(self) -> None:
        """Close the connection, if one is open."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _open(self) -> http.client.HTTPConnection:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=REQUEST_TIMEOUT
            )
        return self._connection

    def _headers(self, body: bytes | None) -> dict[str, str]:
        headers = {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def _keep_cookies(self, reply: Reply) -> None:
        for name, morsel in reply.set_cookies().items():
            if morsel["max-age"] == "0" or not morsel.value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value
