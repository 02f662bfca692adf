"""Session ids, the signed cookie value that carries them, and record keys."""

from __future__ import annotations

import base64
import hmac
import logging
import re
import secrets
from collections.abc import Sequence

from .recent import Recent

logger = logging.getLogger(__name__)

MIN_SECRET_BYTES = 32

# 256 random bits are 43 characters of unpadded urlsafe base64, and so is a
# SHA-256 signature: a cookie value is "<43 chars>.<43 chars>".
_ID_LENGTH = 43
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}")
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")

# Each purpose gets its own key, derived from the secret, so that a value made
# for one purpose can never pass for another.
_SIGNATURE_LABEL = b"aerospike-wsgi-session/v1/cookie-signature"
_RECORD_KEY_LABEL = b"aerospike-wsgi-session/v1/record-key"

# How many record keys a signer remembers; the requests in flight need no more.
_RECENT_RECORD_KEYS = 1024


def new_session_id() -> str:
    """Return a new session id: 256 random bits, 43 urlsafe base64 characters."""
    return secrets.token_urlsafe(32)


def _text(digest: bytes) -> str:
    """Return *digest* as urlsafe base64 without padding."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _secret_bytes(secret: object, position: str) -> bytes:
    """Return one secret as bytes, refusing wrong types and short secrets."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not isinstance(secret, bytes):
        kind = type(secret).__name__
        raise TypeError(f"{position} must be str or bytes, not {kind}")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{position} is {len(secret)} bytes long; at least "
            f"{MIN_SECRET_BYTES} random bytes are required"
        )
    return secret


def _derive(secret: bytes, label: bytes) -> bytes:
    """Return the key for the purpose named by *label*."""
    return hmac.digest(secret, label, "sha256")


class Signer:
    """Signs session ids for the cookie and hashes them into record keys.

    The cookie value is ``<session id>.<signature>``, the signature being an
    HMAC-SHA256 of the id. A cookie that is malformed or was not signed with
    one of the secrets is refused, so a client cannot pick its own session id.

    Key rotation: put the new secret first. The first secret signs; every
    secret verifies, and :meth:`unsign` says when an older one did, so that
    the cookie can be issued again under the new secret. Drop an old secret
    once the cookies it signed have expired.

    Record keys: the id is never stored as it is. :meth:`record_key` returns a
    keyed hash of it, so that a copy of the database holds no id that could be
    replayed as a cookie. That hash is keyed by *record_key_secret* when it is
    given, else by the **last** secret of the list: the oldest one, which
    stays in place while new secrets are put in front. Changing the secret
    that keys record keys makes every stored session unreachable.

    Secrets never appear in the ``repr`` of a signer or in its errors.

    :param secret: one secret, or a list of them, newest first; each
        ``str`` (encoded as UTF-8) or ``bytes`` of at least 32 bytes, which
        should be random (``secrets.token_urlsafe(32)`` makes one).
    :param record_key_secret: the secret that keys record keys, kept apart
        from the signing secrets so they can all be rotated. Default ``None``:
        the last of *secret*.
    :raises TypeError: a secret is neither ``str`` nor ``bytes``.
    :raises ValueError: the list is empty or a secret is under 32 bytes.
    """

    def __init__(
        self,
        secret: str | bytes | Sequence[str | bytes],
        *,
        record_key_secret: str | bytes | None = None,
    ) -> None:
        secret_list = self._secret_list(secret)
        self._signature_keys = [_derive(s, _SIGNATURE_LABEL) for s in secret_list]

        if record_key_secret is None:
            keying = secret_list[-1]
            if len(secret_list) > 1:
                logger.warning(
                    "record keys are hashed with the last of %d secrets: dropping "
                    "it ends every session; pass it as record_key_secret to "
                    "rotate freely",
                    len(secret_list),
                )
        else:
            keying = _secret_bytes(record_key_secret, "record_key_secret")
        self._record_key_key = _derive(keying, _RECORD_KEY_LABEL)
        self._separate_record_key = record_key_secret is not None
        # A request asks for its record key at load and again at save.
        self._recent_record_keys: Recent[str, str] = Recent(_RECENT_RECORD_KEYS)

    @staticmethod
    def _secret_list(secret: object) -> list[bytes]:
        """Return the secrets as a list of bytes, checked."""
        if isinstance(secret, str | bytes):
            return [_secret_bytes(secret, "secret")]
        if not isinstance(secret, Sequence):
            kind = type(secret).__name__
            raise TypeError(f"secret must be str, bytes or a list of them, not {kind}")
        if not secret:
            raise ValueError("the list of secrets is empty")
        return [_secret_bytes(s, f"secret #{i}") for i, s in enumerate(secret)]

    def __repr__(self) -> str:
        record_key = "separate" if self._separate_record_key else "last secret"
        count = len(self._signature_keys)
        return f"<Signer: {count} secret(s), record keys from {record_key}>"

    def _signature(self, key: bytes, session_id: str) -> str:
        """Return the signature of *session_id* under *key*, as text."""
        return _text(hmac.digest(key, session_id.encode("ascii"), "sha256"))

    def sign(self, session_id: str) -> str:
        """Return the cookie value ``<session_id>.<signature>``.

        :param session_id: an id made by :func:`new_session_id`.
        :raises ValueError: *session_id* is not such an id.
        """
        if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
            raise ValueError("session_id must be an id made by new_session_id()")
        signature = self._signature(self._signature_keys[0], session_id)
        return f"{session_id}.{signature}"

    def unsign(self, cookie_value: str) -> tuple[str, bool] | None:
        """Return the session id a cookie value carries, if its signature holds.

        Never raises: anything malformed, forged or unsigned gives ``None``.

        :param cookie_value: the value of the session cookie.
        :returns: ``(session_id, signed_with_current_key)``, where the flag is
            false when an older secret signed it and the cookie should be
            issued again; or ``None``.
        """
        # Shape first: it is cheap, and it keeps hashing for well-formed input.
        if type(cookie_value) is not str or not _COOKIE_VALUE.fullmatch(cookie_value):
            return None

        session_id = cookie_value[:_ID_LENGTH]
        signature = cookie_value[_ID_LENGTH + 1 :]
        for index, key in enumerate(self._signature_keys):
            expected = self._signature(key, session_id)
            if hmac.compare_digest(expected, signature):
                return session_id, index == 0
        return None

    def record_key(self, session_id: str) -> str:
        """Return the Aerospike key under which *session_id* is stored.

        It is a keyed SHA-256 hash of the id, as 43 urlsafe base64 characters.

        :param session_id: the session id.
        """
        record_key = self._recent_record_keys.get(session_id)
        if record_key is None:
            message = session_id.encode("utf-8")
            record_key = _text(hmac.digest(self._record_key_key, message, "sha256"))
            self._recent_record_keys.remember(session_id, record_key)
        return record_key
