"""The session cookie: its settings, the headers that set it, and reading it."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import webob.cookies
from webob.cookies import make_cookie

logger = logging.getLogger(__name__)

# The WebOb stubs leave parse_cookie out; it yields (name, value) byte pairs.
_parse_cookie: Callable[[str], Iterator[tuple[bytes, bytes]]]
_parse_cookie = webob.cookies.parse_cookie  # type: ignore[attr-defined]

SameSite = Literal["Strict", "Lax", "None"]

_SAMESITE_SPELLINGS: dict[str, SameSite] = {
    "strict": "Strict",
    "lax": "Lax",
    "none": "None",
}

# An RFC 6265 token: visible ASCII but for separators.
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# WebOb's reader skips cookies named like an attribute or starting with "$",
# so a cookie named so could be written but never read back.
_ATTRIBUTE_NAMES = frozenset(
    {"expires", "path", "comment", "domain", "max-age", "secure", "httponly"}
    | {"version", "samesite"}
)

_FORBIDDEN_IN_ATTRIBUTE = re.compile(r"[\x00-\x20;,\x7f]")

# Values WebOb writes as they are, unquoted, such as a signed session id.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CookieSettings:
    """How the session cookie is named and which attributes it carries.

    Every setting is checked when the object is made, so that a mistake shows
    at start-up rather than as a cookie the browser silently drops.

    :param name: the cookie name, an RFC 6265 token. A ``__Host-`` prefix
        requires a secure cookie, no domain and the path ``/``; a
        ``__Secure-`` prefix requires a secure cookie. Default ``"session"``.
    :param max_age: lifetime in seconds; ``None`` makes a browser-session
        cookie, dropped when the browser closes. Default ``None``.
    :param path: the path the cookie is sent for. Default ``"/"``.
    :param domain: the domain the cookie is sent to; ``None`` means only the
        host that set it, which is the safer choice. Default ``None``.
    :param secure: send the cookie over HTTPS only. ``"auto"`` lets the
        middleware decide per request: secure on HTTPS requests, and also on
        plain HTTP when another setting needs it (``SameSite=None``,
        ``partitioned``, a ``__Host-`` or ``__Secure-`` name); it counts as
        secure for the checks above. ``False`` lets the cookie, and so the
        session, travel in clear text: use it for local development only.
        Default ``False``.
    :param httponly: hide the cookie from JavaScript, so that a script
        injected into a page cannot steal the session. Default ``True``.
    :param samesite: ``"Strict"``, ``"Lax"``, ``"None"`` (any case) or
        ``None`` to leave the attribute out. ``"None"`` sends the cookie on
        cross-site requests, which opens the door to cross-site request
        forgery, and requires a secure cookie. Default ``"Lax"``.
    :param partitioned: add the ``Partitioned`` attribute (CHIPS), for a
        cookie set in a third-party context; requires a secure cookie.
        Default ``False``.
    :raises ValueError: a setting is invalid, or settings contradict each
        other.
    :raises TypeError: a setting has the wrong type.
    """

    name: str = "session"
    max_age: int | None = None
    path: str = "/"
    domain: str | None = None
    secure: bool | Literal["auto"] = False
    httponly: bool = True
    samesite: SameSite | None = "Lax"
    partitioned: bool = False
    _options: dict[bool, dict[str, Any]] = field(init=False, repr=False, compare=False)
    _deletions: dict[bool, str] = field(init=False, repr=False, compare=False)
    _set_templates: dict[bool, tuple[int, str]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._check_types()
        samesite = _canonical_samesite(self.samesite)
        object.__setattr__(self, "samesite", samesite)
        self._check_values()
        self._check_secure_requirements()

        # Built once per Secure flag this cookie can carry, not per response.
        flags = {self._secure_flag(is_https) for is_https in (False, True)}
        options = {flag: self._make_cookie_options(flag) for flag in flags}
        object.__setattr__(self, "_options", options)
        deletions = {flag: self._build(None, flag) for flag in flags}
        object.__setattr__(self, "_deletions", deletions)
        object.__setattr__(self, "_set_templates", {})

    def _check_types(self) -> None:
        """Refuse settings of the wrong type."""
        for option in ("httponly", "partitioned"):
            if not isinstance(getattr(self, option), bool):
                raise TypeError(f"{option} must be True or False")
        if not isinstance(self.secure, bool) and self.secure != "auto":
            raise ValueError(
                f"secure must be True, False or 'auto', not {self.secure!r}"
            )
        for option in ("name", "path"):
            if not isinstance(getattr(self, option), str):
                raise TypeError(f"{option} must be a str")
        if self.domain is not None and not isinstance(self.domain, str):
            raise TypeError("domain must be a str or None")
        if self.max_age is not None and type(self.max_age) is not int:
            raise TypeError(f"max_age must be an int or None, not {self.max_age!r}")

    def _check_values(self) -> None:
        """Refuse a bad name, a negative lifetime, a bad path or domain."""
        if not _COOKIE_NAME.fullmatch(self.name):
            raise ValueError(f"cookie name {self.name!r} is not an RFC 6265 token")
        if self.name[0] == "$" or self.name.lower() in _ATTRIBUTE_NAMES:
            raise ValueError(f"cookie name {self.name!r} is reserved")
        if self.max_age is not None and self.max_age < 0:
            raise ValueError(f"max_age must be 0 or more, not {self.max_age}")

        if not self.path.startswith("/") or _FORBIDDEN_IN_ATTRIBUTE.search(self.path):
            raise ValueError(f"path {self.path!r} must start with '/' and hold no ';'")
        if self.domain is not None and (
            not self.domain or _FORBIDDEN_IN_ATTRIBUTE.search(self.domain)
        ):
            raise ValueError(f"domain {self.domain!r} is empty or holds a separator")

    def _check_secure_requirements(self) -> None:
        """Refuse settings that browsers only accept on a secure cookie."""
        name = self.name.lower()
        if name.startswith("__host-") and (self.domain is not None or self.path != "/"):
            raise ValueError("a '__Host-' cookie must have no domain and path '/'")
        if self.secure is not False:
            return

        if self.samesite == "None":
            raise ValueError("SameSite=None requires secure=True or 'auto'")
        if self.partitioned:
            raise ValueError("partitioned requires secure=True or 'auto'")
        if name.startswith(("__host-", "__secure-")):
            raise ValueError(f"cookie name {self.name!r} requires a secure cookie")

    @property
    def _needs_secure(self) -> bool:
        """Whether other settings make the Secure attribute compulsory."""
        prefixed = self.name.lower().startswith(("__host-", "__secure-"))
        return self.samesite == "None" or self.partitioned or prefixed

    def _make_cookie_options(self, secure: bool) -> dict[str, Any]:
        """Return the keyword arguments of ``make_cookie`` for one Secure flag."""
        return {
            "max_age": self.max_age,
            "path": self.path,
            "domain": self.domain,
            "secure": secure,
            "httponly": self.httponly,
            "samesite": self.samesite,
        }

    def _build(self, value: str | None, secure: bool) -> str:
        """Return a Set-Cookie value; a *value* of ``None`` expires the cookie."""
        header = make_cookie(self.name, value, **self._options[secure])
        return header + "; Partitioned" if self.partitioned else header

    def _secure_flag(self, secure: bool) -> bool:
        """Return whether this response's cookie carries the Secure attribute."""
        if self.secure == "auto":
            return secure or self._needs_secure
        return self.secure

    def set_header(self, value: str, *, secure: bool) -> str:
        """Return the value of a ``Set-Cookie`` header that sets the cookie.

        :param value: the cookie value, such as a signed session id.
        :param secure: whether the request came over HTTPS; it only matters
            when the ``secure`` setting is ``"auto"``.
        """
        flag = self._secure_flag(secure)
        if not _PLAIN_VALUE.fullmatch(value):
            return self._build(value, flag)
        return f"{self.name}={value}{self._attributes(flag)}"

    def _attributes(self, secure: bool) -> str:
        """What follows the value in a Set-Cookie header, built once a second.

        The attributes only change with the Secure flag and, through
        ``Expires``, with the time: WebOb builds them at most once a second.
        """
        now = int(time.time()) if self.max_age is not None else 0
        template = self._set_templates.get(secure)
        if template is None or template[0] != now:
            built = self._build("-", secure)
            template = (now, built[len(self.name) + 2 :])
            self._set_templates[secure] = template
        return template[1]

    def delete_header(self, *, secure: bool) -> str:
        """Return the value of a ``Set-Cookie`` header that removes the cookie.

        It repeats the cookie's path, domain and other attributes, since a
        browser only replaces a cookie whose attributes match.

        :param secure: whether the request came over HTTPS; it only matters
            when the ``secure`` setting is ``"auto"``.
        """
        return self._deletions[self._secure_flag(secure)]


def _canonical_samesite(samesite: object) -> SameSite | None:
    """Return the canonical spelling of a SameSite setting."""
    if samesite is None:
        return None
    spelling = samesite.lower() if isinstance(samesite, str) else None
    if spelling not in _SAMESITE_SPELLINGS:
        expected = "'Strict', 'Lax', 'None' (any case) or None"
        raise ValueError(f"samesite must be {expected}, not {samesite!r}")
    return _SAMESITE_SPELLINGS[spelling]


def read_cookie(environ: Mapping[str, Any], name: str) -> str | None:
    """Return the value of the cookie *name* in the request, or ``None``.

    When the request holds several cookies of that name (a browser may send
    one per matching path or domain), their value is returned if they all
    agree; if they disagree, ``None``: such a request is treated as having no
    session, since nothing tells which cookie is the right one. Never raises,
    whatever the ``Cookie`` header holds.

    :param environ: the WSGI environ.
    :param name: the cookie name.
    """
    header = environ.get("HTTP_COOKIE")
    if not isinstance(header, str) or name not in header:
        return None
    try:
        wanted = name.encode("ascii")
    except UnicodeEncodeError:
        return None

    if not header.isascii():
        # WSGI headers are latin-1 text; replace anything else, which WebOb
        # could not encode, rather than fail.
        header = header.encode("latin-1", "replace").decode("latin-1")
    values = {value for key, value in _parse_cookie(header) if key == wanted}
    if len(values) != 1:
        return None
    return values.pop().decode("latin-1")
