"""What a request asks of its limits: its model, and the tokens it reserves at admission."""

from __future__ import annotations

import re
from typing import Any

import orjson

from ..core.request import GatewayRequest
from ..core.usage import estimate_tokens, prompt_text_length

# A multipart form's model field (audio transcriptions): read without parsing the form.
_FORM_MODEL = re.compile(rb'name="model"\r\n(?:[^\r\n]*\r\n)*\r\n([^\r\n]{1,256})\r\n')
_COMPLETION_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def requested_model(request: GatewayRequest) -> str | None:
    """The model a request names, wherever that endpoint puts it; None if it names none."""
    payload = request.payload
    if payload is None and request.body[:1] == b"{":
        try:
            parsed = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            parsed = None
        payload = parsed if isinstance(parsed, dict) else None
    if payload is not None:
        model = payload.get("model")
        return model if isinstance(model, str) else None
    if request.path.startswith("/models/"):
        return request.path[len("/models/") :] or None
    if b"multipart/form-data" in _header(request, b"content-type"):
        match = _FORM_MODEL.search(request.body)
        return match.group(1).decode("utf-8", "replace") if match else None
    return None


def reserved_tokens(path: str, payload: dict[str, Any] | None, default_max_tokens: int) -> int:
    """The prompt (estimated from its text) plus the most the answer may hold: ``max_tokens``
    (or its newer names) times ``n``, else the default. Embeddings reserve their input only."""
    return sum(reserved_parts(path, payload, default_max_tokens))


def reserved_parts(
    path: str, payload: dict[str, Any] | None, default_max_tokens: int
) -> tuple[int, int]:
    """``reserved_tokens`` as (prompt, completion): a money budget prices them apart."""
    prompt = estimate_tokens(prompt_text_length(payload))
    if path == "/embeddings":
        return max(prompt, 1), 0
    if payload is None:
        return prompt, default_max_tokens
    completion = next(
        (
            value
            for name in _COMPLETION_FIELDS
            if isinstance(value := payload.get(name), int) and not isinstance(value, bool)
        ),
        default_max_tokens,
    )
    choices = payload.get("n")
    count = choices if isinstance(choices, int) and not isinstance(choices, bool) else 1
    return prompt, max(completion, 0) * max(count, 1)


def _header(request: GatewayRequest, name: bytes) -> bytes:
    for key, value in request.headers:
        if key == name:
            return value
    return b""
