"""Exceptions raised by aerospike-wsgi-session.

Every exception of this package derives from :class:`SessionError`, so an
application can catch them all in one place. Configuration mistakes are not
among them: they raise :class:`ValueError` or :class:`TypeError` when the
object is built, before the first request.
"""

from __future__ import annotations

from typing import Any


class SessionError(Exception):
    """Base class of every error raised by this package."""


class StoreError(SessionError):
    """A call to Aerospike failed.

    The client's exception is chained as ``__cause__``; :attr:`cause` holds it
    too, for code that logs or inspects it.
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class StoreUnavailableError(StoreError):
    """Aerospike could not be reached in time: down, unreachable or timing out."""


class WriteInDoubtError(StoreUnavailableError):
    """A write was sent, but no answer came back: it may or may not have landed.

    Such a write is never retried blindly, since it may have been applied.
    """


class SessionConflictError(StoreError):
    """Concurrent requests kept changing the session faster than it could be saved."""


class SessionTooLargeError(SessionError):
    """The encoded session does not fit in one Aerospike record.

    :attr:`size` is the encoded size in bytes, :attr:`limit` the namespace's
    record size limit, when known.
    """

    def __init__(self, size: int, limit: int | None = None) -> None:
        limit_text = f" of {limit} bytes" if limit is not None else ""
        super().__init__(
            f"the session is {size} bytes encoded, over the namespace's record "
            f"size limit{limit_text}; nothing was written"
        )
        self.size = size
        self.limit = limit


class UnencodableValueError(SessionError, TypeError):
    """A session value cannot be encoded by the mapper.

    Raised before anything is written, so the stored session stays as it was.
    """

    def __init__(self, key: str, value: Any, reason: str) -> None:
        # The value's type, not its repr: session contents stay out of logs.
        kind = type(value).__name__
        super().__init__(f"session key {key!r}: cannot encode a {kind}: {reason}")
        self.key = key
        self.value = value


class DecodeError(SessionError):
    """A stored record could not be decoded into session data."""


class SessionUnavailableError(SessionError):
    """The session could not be loaded, so it refuses to be written.

    Raised by a session that the middleware handed out in place of the real
    one while Aerospike was unavailable, under the ``degrade`` failure policy.
    """


class CheckError(StoreError):
    """The self-check found Aerospike unfit to keep sessions; the message says why."""
