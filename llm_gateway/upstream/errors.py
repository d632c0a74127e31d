"""The one place where what an engine does wrong becomes a ``GatewayError``.

Two kinds: aiohttp's exceptions (cannot connect, reset, timed out; ``failure``), by the stage
at which they happened, and an engine's own error answers (HTTP 4xx/5xx; ``error_answer``):
4xx keep their status and the engine's error object, cleaned of tracebacks and paths; 5xx
become 502; the engine refusing the gateway's own key is not the client's fault (502).
"""

from __future__ import annotations

import enum
from typing import Any

import aiohttp
import orjson

from ..errors import (
    EngineDeadError,
    EngineGenerateError,
    EngineTimeoutError,
    GatewayError,
    clean_message,
    error_body,
)

# A pooled connection the engine closed while idle fails on reuse before any answer; such a
# request never reached the engine, so it may be sent once more on a fresh connection.
STALE_CONNECTION_ERRORS = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
MAX_ERROR_BODY = 1024 * 1024


class Stage(enum.Enum):
    REQUEST = "request"  # sending, waiting for the status line
    ANSWER = "answer"  # reading a whole body
    STREAM = "stream"  # reading a stream


_TIMEOUTS = {
    Stage.REQUEST: "The engine did not answer in time.",
    Stage.ANSWER: "The engine stopped sending its answer.",
    Stage.STREAM: "The engine stopped sending the stream.",
}
_BROKEN = {
    Stage.REQUEST: "The engine closed the connection before answering.",
    Stage.ANSWER: "The engine's answer broke off.",
    Stage.STREAM: "The engine's stream broke off.",
}


def failure(exc: BaseException, stage: Stage) -> GatewayError:
    """An aiohttp exception (or a timeout) as the gateway error the client gets."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return EngineDeadError(f"Cannot connect to the engine: {exc.strerror}.")
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return EngineTimeoutError(_TIMEOUTS[stage])
    if isinstance(exc, STALE_CONNECTION_ERRORS) or stage is not Stage.REQUEST:
        return EngineGenerateError(_BROKEN[stage])
    return EngineGenerateError(f"Upstream request failed: {type(exc).__name__}.")


def _flat_message(parsed: dict[str, Any]) -> str:
    """vLLM's older ``{"message": ...}`` or FastAPI's ``{"detail": ...}`` (a list for 422)."""
    detail = parsed.get("message") or parsed.get("detail") or ""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(
                    f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", ""))
                )
        return "; ".join(parts)
    return str(detail)


def error_answer(status: int, raw: bytes, headers: list[tuple[bytes, bytes]]) -> GatewayError:
    """An engine's error answer as our error: 4xx keep status and body, cleaned; 5xx -> 502."""
    content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"").decode(
        "latin-1"
    )
    error: dict[str, Any] | None = None
    message = ""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        inner = parsed.get("error")
        if isinstance(inner, dict):
            error = inner
            message = str(inner.get("message") or "")
        elif isinstance(inner, str):
            message = inner
        else:
            message = _flat_message(parsed)
    if not message and parsed is None and content_type.startswith("text/plain"):
        message = raw[:2000].decode("utf-8", "replace")  # never an HTML page
    message = clean_message(message) if message else ""
    passed = [h for h in headers if h[0].lower() == b"retry-after"]
    if status in (401, 403):
        # The engine refused the gateway's own credentials: not the client's fault.
        return EngineGenerateError(
            f"The engine refused the gateway's credentials (HTTP {status}).",
            code="upstream_auth_failed",
        )
    if 400 <= status < 500:
        error_type = "invalid_request_error"
        if error is not None and isinstance(error.get("type"), str):
            error_type = error["type"]
        param = error.get("param") if error is not None else None
        code = error.get("code") if error is not None else None
        message = message or f"The engine answered HTTP {status}."
        body = error_body(message, error_type, param if isinstance(param, str) else None, None)
        if isinstance(code, str | int):
            body["error"]["code"] = code
        # The client gets the engine's body; records and metrics its code, or the status.
        return EngineGenerateError(
            message,
            status=status,
            type=error_type,
            code=str(code) if isinstance(code, str | int) else f"upstream_{status}",
            body=body,
            headers=passed,
        )
    detail = f": {message}" if message else "."
    return EngineGenerateError(f"The engine failed (HTTP {status}){detail}", headers=passed)
