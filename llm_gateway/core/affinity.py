"""The key ``prefix_affinity`` routes on: the client's session (``X-Session-Id``), else its
``user``, else the start of its prompt: the system prompt and the first user message (up to
``AFFINITY_PREFIX_CHARS``). Each turn of a conversation resends the history behind the same
start, so every turn goes where that history is cached; another conversation starts
differently and may go elsewhere."""

from __future__ import annotations

from typing import Any

from .request import GatewayRequest

SESSION_HEADER = b"x-session-id"


def affinity_key(request: GatewayRequest, chars: int) -> bytes | None:
    for name, value in request.headers:
        if name == SESSION_HEADER and value:
            return b"session:" + value
    payload = request.payload
    if payload is None:
        return None
    user = payload.get("user")
    if isinstance(user, str) and user:
        return b"user:" + user.encode("utf-8", "replace")
    prefix = prompt_prefix(payload, chars)
    return b"prompt:" + prefix.encode("utf-8", "replace") if prefix else None


def prompt_prefix(payload: dict[str, Any], chars: int) -> str:
    """The first ``chars`` characters of the prompt, up to the end of its first user message
    (messages in order, with their roles)."""
    parts: list[str] = []
    length = 0
    for text in _texts(payload):
        parts.append(text)
        length += len(text)
        if length >= chars:
            break
    return "".join(parts)[:chars]


def _texts(payload: dict[str, Any]) -> Any:
    for field in ("instructions", "prompt"):
        if isinstance(value := payload.get(field), str):
            yield value
    messages = payload.get("messages")
    if messages is None and isinstance(payload.get("input"), list):
        messages = payload["input"]  # the Responses API's input items
    elif messages is None and isinstance(payload.get("input"), str):
        yield payload["input"]
    for message in messages or ():
        if not isinstance(message, dict):
            continue
        role = message.get("role", "")
        yield f"\x00{role}\x00"
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"]
        if role == "user":
            return  # what follows changes from turn to turn
