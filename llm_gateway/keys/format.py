"""API key format and hashing; no Django imports.

A raw key is ``sk-<prefix>-<secret>``: the prefix (8 hex characters) is stored in clear for
lookup and display, the secret carries 256 bits from :mod:`secrets`, and only the SHA-256
digest of the whole key is stored. A slow hash is not needed: the secret is random, not a
password (the same reasoning as django-rest-knox).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import NamedTuple

PREFIX_HEX_CHARS = 8
SECRET_BYTES = 32
_KEY_RE = re.compile(rf"sk-([0-9a-f]{{{PREFIX_HEX_CHARS}}})-[A-Za-z0-9_\-]{{43}}")


class NewKey(NamedTuple):
    raw: str
    prefix: str
    digest: str


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()


def generate() -> NewKey:
    prefix = secrets.token_hex(PREFIX_HEX_CHARS // 2)
    raw = f"sk-{prefix}-{secrets.token_urlsafe(SECRET_BYTES)}"
    return NewKey(raw, prefix, digest(raw))


def prefix_of(raw: str) -> str | None:
    """The lookup prefix of a well-formed generated key, else None (static keys are free-form)."""
    match = _KEY_RE.fullmatch(raw)
    return match.group(1) if match else None


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def display(prefix: str) -> str:
    """How a key is shown anywhere (admin, commands, logs): its prefix, never its secret."""
    return f"sk-{prefix}-…" if prefix else "-"


def state(revoked_ts: float | None, expires_ts: float | None, now_ts: float) -> str:
    """Whether a key is usable at ``now_ts`` (POSIX seconds): active, revoked or expired.
    The one definition, for the model, the admin and the per-process key store."""
    if revoked_ts is not None and revoked_ts <= now_ts:
        return "revoked"
    if expires_ts is not None and expires_ts <= now_ts:
        return "expired"
    return "active"
