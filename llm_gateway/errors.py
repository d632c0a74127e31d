"""Errors the gateway answers with, each rendered as an OpenAI-shaped JSON body (or, before a
WebSocket is accepted, as a close code). Framework-free: the core raises them, both faces
render them.

``EngineGenerateError`` and ``EngineDeadError`` mirror vLLM's two engine errors: one request
failed (recoverable) versus the engine cannot serve at all.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson

logger = logging.getLogger("llm_gateway.errors")
# A WebSocket refused before it is accepted closes with 4000 + the HTTP status it stands for
# (the server then answers the handshake with 403).
WS_CLOSE_BASE = 4000


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        body: dict[str, Any] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        self._body = body
        self._headers = headers or []

    def headers(self) -> list[tuple[bytes, bytes]]:
        return self._headers

    def add_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Headers every answer carries (the limits'), added to this one's."""
        if headers:
            self._headers = [*self._headers, *headers]

    def body(self) -> dict[str, Any]:
        """The OpenAI error object: an upstream's own (cleaned) when it sent one."""
        if self._body is not None:
            return self._body
        return error_body(self.message, self.type, self.param, self.code)

    def json(self) -> bytes:
        return orjson.dumps(self.body())

    def close_code(self) -> int:
        """The WebSocket close code of a handshake this error refuses."""
        return WS_CLOSE_BASE + self.status


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class RequestTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class ModelNotFound(GatewayError):
    """OpenAI's answer, the same whether the model exists or the key may not use it."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str | None) -> None:
        if model is None:
            message = "The request names no model: set its 'model'."
        else:
            message = f"The model `{model}` does not exist or you do not have access to it."
        super().__init__(message, param="model" if model is None else None)


class NotFound(GatewayError):
    """A path the gateway answers itself (``/v1/gateway/...``) that names nothing there."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"www-authenticate", b"Bearer"), *self._headers]


class KeyStoreUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "key_store_unavailable"


class ServerShuttingDown(GatewayError):
    """The process drains (SIGTERM): in-flight requests finish, new ones go elsewhere."""

    status = 503
    type = "server_error"
    code = "server_shutting_down"


class EngineGenerateError(GatewayError):
    """One request failed upstream: an error status, a broken body, or a read timeout."""

    status = 502
    type = "server_error"
    code = "upstream_error"


class EngineTimeoutError(EngineGenerateError):
    status = 504
    code = "upstream_timeout"


class EngineDeadError(GatewayError):
    """The engine cannot be reached, or the watchdog has declared it dead."""

    status = 503
    type = "server_error"
    code = "engine_unavailable"


# A stack frame: 'File "...", line N, in f' and, on the next line, its indented source line.
_FRAME_RE = re.compile(r'[ \t]*File "[^"]*", line \d+(?:, in \S+)?(?:\n[ \t]+[^\n]*)?')
# A filesystem path: one with a file extension, or under a well-known root. API paths such as
# /v1/chat/completions are left alone; "https://host/a/b" is not matched (the lookbehind).
_PATH_RE = re.compile(
    r"(?<![\w:/.~-])(?:"
    r"[A-Za-z]:\\[^\s'\"]+"
    r"|~?/(?:[\w.@+\-]+/)*[\w@+\-]+\.(?:py|pyc|pyx|so|dll|c|cc|cpp|h|gguf|bin|safetensors|pt|pth"
    r"|json|ya?ml|toml|cfg|ini|log|txt|sock)\b"
    r"|/(?:home|usr|opt|srv|var|tmp|root|work|app|data|models|mnt|etc|lib|Users)/[\w.@+\-/]*"
    r")"
)
MAX_MESSAGE_CHARS = 2000


def clean_message(message: str) -> str:
    """Drop tracebacks and file paths an engine leaks into its error messages.

    Of a traceback only its last line stays: the exception and its message, which is what
    the client needs ("ValueError: Requested tokens exceed context window").
    """
    head, marker, tail = message.partition("Traceback (most recent call last):")
    if marker:
        lines = [line for line in tail.splitlines() if line.strip() and not line[0].isspace()]
        message = f"{head.strip()} {lines[-1] if lines else ''}"
    message = _FRAME_RE.sub("", message)
    message = _PATH_RE.sub("<path>", message).strip()
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "...[truncated]"
    return message or "The engine returned an error."


class ServerErrorLog:
    """5xx answers, logged at most once a second per kind, with the count left out: with the
    engine dead every request fails the same way. One per face (state of its own)."""

    INTERVAL = 1.0

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], tuple[float, int]] = {}

    def __call__(self, method: str, path: str, error: GatewayError) -> None:
        key = (type(error).__name__, error.status)
        now = time.monotonic()
        last, suppressed = self._last.get(key, (-self.INTERVAL, 0))
        if now - last < self.INTERVAL:
            self._last[key] = (last, suppressed + 1)
            return
        self._last[key] = (now, 0)
        more = f" (and {suppressed} more like it)" if suppressed else ""
        logger.warning("%s %s -> %d: %s%s", method, path, error.status, error, more)
