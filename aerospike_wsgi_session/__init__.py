"""Server-side sessions for any WSGI application, stored in Aerospike.

Wrap the application in :class:`SessionMiddleware`, give it an
:class:`AerospikeStore`, and every request finds its :class:`Session` in the
WSGI environ under ``"aerospike.session"``.
"""

from __future__ import annotations

from .exc import (
    CheckError,
    DecodeError,
    SessionConflictError,
    SessionError,
    SessionTooLargeError,
    SessionUnavailableError,
    StoreError,
    StoreUnavailableError,
    UnencodableValueError,
    WriteInDoubtError,
)
from .mapper import JSONMapper, Mapper
from .middleware import SessionMiddleware
from .session import Session
from .store import AerospikeStore

__all__ = [
    "AerospikeStore",
    "CheckError",
    "DecodeError",
    "JSONMapper",
    "Mapper",
    "Session",
    "SessionConflictError",
    "SessionError",
    "SessionMiddleware",
    "SessionTooLargeError",
    "SessionUnavailableError",
    "StoreError",
    "StoreUnavailableError",
    "UnencodableValueError",
    "WriteInDoubtError",
]
