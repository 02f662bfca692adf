"""Middleware and store options from configuration text.

A paste ini file or a Pyramid settings dict gives every option as a string;
:func:`parse_settings` turns them into the keyword arguments of
:class:`~aerospike_wsgi_session.middleware.SessionMiddleware` and
:class:`~aerospike_wsgi_session.store.AerospikeStore`, each through the
converter its option needs. Values that are already of the right type (from
Python code) pass unchanged.

Conversions:

* booleans: ``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0``;
* durations: whole seconds, or a number with ``s``, ``m``, ``h`` or ``d``
  (``30m``, ``8h``); ``none`` or an empty value for "no limit" where the
  option allows ``None``;
* ``hosts``: ``h1:3000 h2:3000``, spaces, commas or one per line;
* ``secret``: one secret per line, newest first;
* ``id_generator``, ``clock``, ``metrics_hook``, ``mapper``: the dotted name
  of an object (``package.module:name``); a class named as ``mapper`` is
  instantiated without arguments;
* client policies: ``total_timeout``, ``socket_timeout``, ``max_retries`` and
  ``sleep_between_retries`` (milliseconds or counts, 0 or more) apply to every
  request policy the store sets (read, write, operate, remove);
  ``policies.<policy>.<field>`` sets one field of one policy;
* a few client options by name (``user``, ``password``, ``cluster_name``,
  ``connect_timeout``...), and any other ``aerospike.client`` option as
  ``client.<name>``, its value read as JSON when it is JSON
  (``client.tls = {"enable": true}``) and as text otherwise.

An unknown option is refused with a :class:`ValueError` that names it, since
a misspelt option silently ignored is a setting that never applies. So is a
value out of the range the client takes (a negative timeout, no connection
per node, an empty ``environ_key``): the client would accept it at load and
refuse every request. No error message ever holds the value of a secret or a
password.
"""

from __future__ import annotations

import difflib
import json
import logging
import pkgutil
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .store import DEFAULT_POLICIES, AerospikeStore, parse_hosts

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .middleware import SessionMiddleware

logger = logging.getLogger(__name__)

Converter = Callable[[str, Any], Any]

_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})
_NONE_WORDS = frozenset({"", "none"})
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(-?\d+)\s*([smhd]?)")

#: The policy fields that apply to every request policy at once.
POLICY_SHORTCUTS = frozenset(
    {"total_timeout", "socket_timeout", "max_retries", "sleep_between_retries"}
)

#: The client policies ``policies.<policy>.<field>`` may name, and their
#: fields; the client refuses a field its policy does not have when it is
#: created.
POLICY_NAMES = frozenset(
    {"read", "write", "operate", "remove", "apply", "batch", "query", "scan"}
    | {"info", "admin"}
)
POLICY_FIELDS = POLICY_SHORTCUTS | {
    "timeout_delay", "compress", "deserialize", "key", "exists", "gen",
    "commit_level", "durable_delete", "replica", "read_mode_ap", "read_mode_sc",
    "read_touch_ttl_percent", "ttl", "max_records", "records_per_second",
    "respond_all_keys",
    "allow_inline", "allow_inline_ssd", "concurrent",
}  # fmt: skip
#: The policy fields that are true or false. The others are whole numbers,
#: which the client reads unsigned: it takes a negative one when it is
#: created and then refuses every command that uses the policy.
BOOLEAN_POLICY_FIELDS = frozenset(
    {"compress", "deserialize", "durable_delete"}
    | {"respond_all_keys", "allow_inline", "allow_inline_ssd", "concurrent"}
)

CLIENT_PREFIX = "client."
POLICY_PREFIX = "policies."


def to_bool(option: str, value: Any) -> bool:
    """``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0``."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f"{option} must be true or false (yes/no, 1/0), not {value!r}")


def to_int(option: str, value: Any) -> int:
    """A whole number."""
    if type(value) is int:
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{option} must be a whole number, not {value!r}") from None


def whole_number(least: int, most: int | None = None) -> Converter:
    """A converter to whole numbers from ``least`` (up to ``most`` if given)."""
    bounds = f"from {least} to {most}" if most is not None else f"{least} or more"

    def convert_in_range(option: str, value: Any) -> int:
        number = to_int(option, value)
        if number < least or (most is not None and number > most):
            raise ValueError(f"{option} must be a whole number {bounds}, not {value!r}")
        return number

    return convert_in_range


def to_seconds(option: str, value: Any) -> int:
    """Whole seconds, or a number followed by ``s``, ``m``, ``h`` or ``d``."""
    if type(value) is int:
        return value
    matched = _DURATION.fullmatch(str(value).strip().lower())
    if matched is None:
        raise ValueError(
            f"{option} must be seconds, or a number with s, m, h or d, not {value!r}"
        )
    number, unit = matched.groups()
    return int(number) * _UNITS[unit or "s"]


def to_float_seconds(option: str, value: Any) -> float:
    """Seconds, fractions allowed."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip().rstrip("s"))
    except ValueError:
        raise ValueError(
            f"{option} must be a number of seconds, not {value!r}"
        ) from None


def optional(convert: Converter) -> Converter:
    """Let ``none`` or an empty value mean ``None`` before ``convert``."""

    def convert_or_none(option: str, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip() in _NONE_WORDS):
            return None
        return convert(option, value)

    return convert_or_none


def to_text(option: str, value: Any) -> str:
    """Text, surrounding blanks removed."""
    if not isinstance(value, str):
        raise TypeError(f"{option} must be text, not {type(value).__name__}")
    return value.strip()


def to_required_text(option: str, value: Any) -> str:
    """Text that is not empty."""
    text = to_text(option, value)
    if not text:
        raise ValueError(f"{option} must not be empty")
    return text


def to_optional_text(option: str, value: Any) -> str | None:
    """Text, or ``None`` for an empty value."""
    if value is None:
        return None
    return to_text(option, value) or None


def to_secure(option: str, value: Any) -> bool | str:
    """A boolean, or ``auto``."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return to_bool(option, value)


def to_samesite(option: str, value: Any) -> str | None:
    """``Strict``, ``Lax`` or ``None``; an empty value leaves the attribute out."""
    if value is None:
        return None
    return to_text(option, value) or None


def to_secrets(option: str, value: Any) -> str | bytes | list[str | bytes]:
    """One secret per line, newest first (or a list of them already)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        lines = [line.strip() for line in value.splitlines()]
        secrets: list[str | bytes] = [line for line in lines if line]
    elif isinstance(value, list | tuple):
        secrets = list(value)
    else:
        raise TypeError(f"{option} must be text, one secret per line")
    if not secrets:
        raise ValueError(f"{option} is required: one secret per line, newest first")
    return secrets[0] if len(secrets) == 1 else secrets


def to_object(option: str, value: Any) -> Any:
    """The object a dotted name such as ``package.module:name`` names."""
    if not isinstance(value, str):
        return value
    try:
        return pkgutil.resolve_name(value.strip())
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{option}: cannot find {value!r}: {err}") from err


def to_mapper(option: str, value: Any) -> Any:
    """A mapper, or the dotted name of one or of its class."""
    found = to_object(option, value)
    return found() if isinstance(found, type) else found


def to_hosts(option: str, value: Any) -> list[tuple[str, int]]:
    """Seed hosts, see :func:`~aerospike_wsgi_session.store.parse_hosts`."""
    return parse_hosts(value)


def to_client_value(option: str, value: Any) -> Any:
    """JSON when the text is JSON, the text itself otherwise."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value.strip()


def policy_converter(policy_field: str) -> Converter:
    """How the value of the client policy field ``policy_field`` is read."""
    if policy_field in BOOLEAN_POLICY_FIELDS:
        return to_bool
    if policy_field == "read_touch_ttl_percent":
        # -1 tells the server not to reset the TTL on reads.
        return whole_number(-1, 100)
    return whole_number(0)


def _refuse_client(option: str, value: Any) -> Any:
    raise ValueError(
        "client cannot be set from configuration text; give hosts and the "
        "client options (user, password, client.<name>...) instead"
    )


#: The options of :class:`~aerospike_wsgi_session.middleware.SessionMiddleware`.
MIDDLEWARE_OPTIONS: dict[str, Converter] = {
    "secret": to_secrets,
    "environ_key": to_required_text,
    "cookie_name": to_required_text,
    "max_age": optional(to_seconds),
    "path": to_text,
    "domain": to_optional_text,
    "secure": to_secure,
    "httponly": to_bool,
    "samesite": to_samesite,
    "partitioned": to_bool,
    "rolling": to_bool,
    "rolling_interval": to_seconds,
    "detect_changes": to_bool,
    "idle_timeout": optional(to_seconds),
    "absolute_timeout": optional(to_seconds),
    "on_store_error": to_text,
    "retry_after": to_seconds,
    "store_budget": optional(to_float_seconds),
    "trust_proxy": to_bool,
    "record_key_secret": optional(to_text),
    "check_at_startup": to_bool,
    "id_generator": to_object,
    "clock": to_object,
}

#: The options of :class:`~aerospike_wsgi_session.store.AerospikeStore`,
#: with the client options it passes on.
STORE_OPTIONS: dict[str, Converter] = {
    "namespace": to_required_text,
    "set": to_required_text,
    "ttl": optional(to_seconds),
    "mapper": to_mapper,
    "client": _refuse_client,
    "metrics_hook": to_object,
    "breaker_threshold": whole_number(0),
    "breaker_cooldown": to_float_seconds,
    "hosts": to_hosts,
    "user": to_text,
    "password": to_text,
    "cluster_name": to_text,
    "app_id": to_text,
    "connect_timeout": whole_number(0),
    # The client refuses a tend interval under 250 ms, and with no connection
    # per node it could send no command.
    "tend_interval": whole_number(250),
    "max_conns_per_node": whole_number(1),
    "min_conns_per_node": whole_number(0),
    "max_socket_idle": whole_number(0),
    "rack_aware": to_bool,
    "rack_id": whole_number(0),
    "use_services_alternate": to_bool,
}


#: Options that the client reads from its ``policies`` themselves, beside
#: the policies.
CLIENT_POLICY_OPTIONS: dict[str, Converter] = {
    "login_timeout_ms": whole_number(0),
}


@dataclass
class SessionSettings:
    """Converted options: what the middleware and the store are built with.

    :param middleware_options: keyword arguments of ``SessionMiddleware``
        besides the application and the store.
    :param store_options: keyword arguments of ``AerospikeStore``.
    """

    middleware_options: dict[str, Any] = field(default_factory=dict)
    store_options: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        # The options hold secrets; their names are enough here.
        names = sorted([*self.middleware_options, *self.store_options])
        return f"<SessionSettings {', '.join(names)}>"

    def make_store(self) -> AerospikeStore:
        """A new store from the store options."""
        return AerospikeStore(**self.store_options)

    def wrap(
        self, app: WSGIApplication, store: AerospikeStore | None = None
    ) -> SessionMiddleware:
        """``app`` behind a new middleware (and a new store unless given)."""
        from .middleware import SessionMiddleware

        options = dict(self.middleware_options)
        secret = options.pop("secret")
        return SessionMiddleware(app, store or self.make_store(), secret, **options)


def parse_settings(settings: Mapping[str, Any], prefix: str = "") -> SessionSettings:
    """Convert configuration text into middleware and store options.

    :param settings: option names and values, such as a paste filter's local
        configuration or Pyramid's settings.
    :param prefix: only names starting with it are options (the prefix is
        removed first); others are left alone. With no prefix every name
        must be an option.
    :raises ValueError: an option is unknown, missing (``secret``) or
        invalid; the message names it.
    :raises TypeError: an option has a value of the wrong type.
    """
    parsed = SessionSettings()
    policies: dict[str, Any] = {}
    options = [
        (name[len(prefix) :], value)
        for name, value in settings.items()
        if name.startswith(prefix)
    ]
    # Shortcuts first, so that a field set for one policy wins over them.
    options.sort(key=lambda option: option[0] not in POLICY_SHORTCUTS)
    for option, value in options:
        _convert_one(parsed, policies, option, value, prefix)
    if "secret" not in parsed.middleware_options:
        raise ValueError(f"{prefix}secret is required: one secret per line")
    _check_connection_range(parsed.store_options, prefix)
    if policies:
        parsed.store_options["policies"] = policies
    return parsed


def _convert_one(
    parsed: SessionSettings,
    policies: dict[str, Any],
    option: str,
    value: Any,
    prefix: str,
) -> None:
    named = f"{prefix}{option}"
    if option in MIDDLEWARE_OPTIONS:
        parsed.middleware_options[option] = MIDDLEWARE_OPTIONS[option](named, value)
    elif option in STORE_OPTIONS:
        parsed.store_options[option] = STORE_OPTIONS[option](named, value)
    elif option in CLIENT_POLICY_OPTIONS:
        policies[option] = CLIENT_POLICY_OPTIONS[option](named, value)
    elif option in POLICY_SHORTCUTS:
        converted = policy_converter(option)(named, value)
        for policy in DEFAULT_POLICIES:
            policies.setdefault(policy, {})[option] = converted
    elif option.startswith(POLICY_PREFIX):
        policy, policy_field = _policy_field(option, prefix)
        fields = policies.setdefault(policy, {})
        fields[policy_field] = policy_converter(policy_field)(named, value)
    elif option.startswith(CLIENT_PREFIX) and len(option) > len(CLIENT_PREFIX):
        # The client refuses a name it does not know when it is created (the
        # store turns on its validate_keys; check_at_startup creates it at
        # start-up). Values are the client's to judge, and it lets some
        # wrong ones pass, such as a text where a number belongs.
        key = option[len(CLIENT_PREFIX) :]
        parsed.store_options[key] = to_client_value(named, value)
    else:
        raise ValueError(_unknown(option, prefix))


def _check_connection_range(store_options: Mapping[str, Any], prefix: str) -> None:
    least = store_options.get("min_conns_per_node")
    most = store_options.get("max_conns_per_node")
    if least is not None and most is not None and least > most:
        raise ValueError(
            f"{prefix}min_conns_per_node ({least}) must not be more than "
            f"{prefix}max_conns_per_node ({most})"
        )


def _policy_field(option: str, prefix: str) -> tuple[str, str]:
    """The policy and the field ``policies.<policy>.<field>`` names."""
    _, policy, policy_field = [*option.split(".", 2), "", ""][:3]
    if policy not in POLICY_NAMES:
        known = ", ".join(sorted(POLICY_NAMES))
        raise ValueError(f"{prefix}{option}: the policy must be one of {known}")
    if policy_field not in POLICY_FIELDS:
        raise ValueError(f"{prefix}{option}: {policy_field!r} is no policy field")
    return policy, policy_field


def _unknown(option: str, prefix: str) -> str:
    known = [*MIDDLEWARE_OPTIONS, *STORE_OPTIONS, *POLICY_SHORTCUTS]
    close = difflib.get_close_matches(option, known, n=1)
    hint = f"; did you mean {prefix}{close[0]}?" if close else ""
    return (
        f"unknown session option {prefix}{option!s}{hint} (other aerospike "
        f"client options go as {prefix}{CLIENT_PREFIX}<name>)"
    )
