"""The request id: validated from the client's X-Request-Id or made fresh, kept in a contextvar."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

SCOPE_KEY = "llm_gateway.request_id"
MAX_LENGTH = 128

request_id_var: ContextVar[str | None] = ContextVar("llm_gateway_request_id", default=None)


def is_valid(value: bytes) -> bool:
    """1-128 printable ASCII characters, no whitespace (0x21-0x7E)."""
    return 0 < len(value) <= MAX_LENGTH and all(0x21 <= b <= 0x7E for b in value)


def choose(incoming: bytes | None) -> str:
    if incoming is not None and is_valid(incoming):
        return incoming.decode("ascii")
    return uuid.uuid4().hex


def get_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return request_id_var.get()
