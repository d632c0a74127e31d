"""The /v1 relay: an ASGI endpoint that passes OpenAI requests to the engine and back.

It is plain ASGI, not a Django view: Django's request cycle costs about 1 ms a request, more
than the whole budget of a relayed call. It keeps what it needs from Django (settings through
``conf``, the key check done by the middleware in front of it) and nothing else.

Bodies go upstream byte for byte; JSON is parsed only on the OpenAI endpoints, to reject a
broken body early and read ``stream``. Stream chunks go out as they arrive. If the client
goes away, the task is cancelled, which closes the upstream connection so the engine stops
generating (LiteLLM keeps forwarding such requests).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from . import response_log
from .conf import conf
from .errors import (
    EngineDeadError,
    EngineGenerateError,
    EngineTimeoutError,
    GatewayError,
    InvalidRequestError,
    RequestTooLargeError,
    clean_message,
    error_body,
)
from .paths import app_path, canonical
from .request_id import SCOPE_KEY as REQUEST_ID_KEY
from .response_log import StreamTap, log_body, log_request
from .sse import encode_event
from .stream import EventBoundary
from .types import Scope
from .upstream import upstream
from .watchdog import watchdog

API_PREFIX = "/v1"
JSON_ENDPOINTS = frozenset({"/chat/completions", "/completions", "/embeddings", "/responses"})
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Never forwarded upstream: the client's key, and what the gateway sets itself.
REQUEST_DROP = HOP_BY_HOP | {
    b"x-gateway-request-id",
    b"host",
    b"authorization",
    b"content-length",
    b"x-request-id",
    b"accept-encoding",
    b"expect",
}
RESPONSE_DROP = HOP_BY_HOP | {b"content-length", b"date", b"server", b"x-request-id"}
STREAM_HEADERS = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
MAX_ERROR_BODY = 1024 * 1024


class ClientDisconnected(Exception):
    """The client left before the request body was read."""


async def read_body(scope: Scope, receive: Any) -> bytes:
    limit = conf.MAX_BODY_BYTES
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise RequestTooLargeError(f"Request body exceeds the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_request(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc.msg}.") from None
    if not isinstance(payload, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return payload


def upstream_headers(scope: Scope) -> list[tuple[str, str]]:
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope["headers"]
        if name not in REQUEST_DROP
    ]
    if id_header := conf.UPSTREAM_REQUEST_ID_HEADER:
        headers.append((id_header, scope.get(REQUEST_ID_KEY) or ""))
    headers.append(("Accept-Encoding", "identity"))
    if key := conf.UPSTREAM_API_KEY:
        headers.append(("Authorization", f"Bearer {key}"))
    return headers


def response_headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    return [h for h in response.raw_headers if h[0].lower() not in RESPONSE_DROP]


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


def upstream_error(status: int, raw: bytes, headers: list[tuple[bytes, bytes]]) -> GatewayError:
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
        return EngineGenerateError(
            message, status=status, type=error_type, body=body, headers=passed
        )
    detail = f": {message}" if message else "."
    return EngineGenerateError(f"The engine failed (HTTP {status}){detail}", headers=passed)


async def relay(scope: Scope, receive: Any, send: Any) -> None:
    path = canonical(app_path(scope))
    sub_path = path[len(API_PREFIX) :]
    method = scope["method"]
    try:
        body = await read_body(scope, receive)
    except ClientDisconnected:
        return
    payload = parse_request(body) if method == "POST" and sub_path in JSON_ENDPOINTS else None
    log_limit = conf.LOG_MAX_CHARS if conf.LOG_RESPONSES and response_log.enabled() else None
    if log_limit is not None:
        log_request(method, path, payload, len(body))
    if watchdog.dead:
        raise EngineDeadError(f"The engine is unavailable: {watchdog.status.reason}.")
    url = upstream_url(sub_path, scope.get("query_string", b""))
    await cancel_on_disconnect(
        exchange(method, url, upstream_headers(scope), body or None, send, log_limit), receive
    )


def upstream_url(sub_path: str, query_string: bytes) -> str:
    url = upstream.base_url() + sub_path
    return f"{url}?{query_string.decode('latin-1')}" if query_string else url


async def cancel_on_disconnect(coro: Any, receive: Any) -> None:
    """Run coro; if the client disconnects first, cancel it (closing the upstream request)."""
    task = asyncio.current_task()
    assert task is not None
    disconnected = False

    async def watch() -> None:
        nonlocal disconnected
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        await coro
    except asyncio.CancelledError:
        if not disconnected:
            raise
        task.uncancel()
    finally:
        watcher.cancel()


async def exchange(
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes | None,
    send: Any,
    log_limit: int | None = None,
) -> None:
    """One upstream round trip; ``log_limit`` (chars) turns response logging on."""
    try:
        response = await upstream.request(method, url, headers=headers, body=body)
    except EngineDeadError:
        watchdog.poke()
        raise
    watchdog.activity += 1
    try:
        if response.status >= 400:
            raw = await _read(response, MAX_ERROR_BODY)
            if log_limit is not None:
                log_body(response.status, raw, log_limit)
            raise upstream_error(response.status, raw, list(response.raw_headers))
        if response.headers.get("Content-Type", "").startswith("text/event-stream"):
            await relay_stream(response, send, StreamTap(log_limit) if log_limit else None)
        else:
            data = await _read(response, None)
            out_headers = response_headers(response)
            out_headers.append((b"content-length", str(len(data)).encode()))
            await send(
                {"type": "http.response.start", "status": response.status, "headers": out_headers}
            )
            await send({"type": "http.response.body", "body": data})
            if log_limit is not None:
                log_body(response.status, data, log_limit)
    except BaseException:
        response.close()  # drop the connection: the engine sees the request end
        raise
    response.release()


async def _read(response: aiohttp.ClientResponse, limit: int | None) -> bytes:
    try:
        if limit is None:
            return await response.read()
        return await response.content.read(limit)
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise EngineTimeoutError("The engine stopped sending its answer.") from exc
    except aiohttp.ClientError as exc:
        raise EngineGenerateError("The engine's answer broke off.") from exc


async def relay_stream(
    response: aiohttp.ClientResponse, send: Any, tap: StreamTap | None = None
) -> None:
    """Send each chunk as it arrives; a failure after the start becomes a final error event.

    The tap (response logging) sees each chunk after it was sent, so it never delays one.
    """
    headers = [h for h in response_headers(response) if h[0].lower() != b"cache-control"]
    headers.extend(STREAM_HEADERS)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    boundary = EventBoundary()
    error: GatewayError | None = None
    last_sent = b""
    try:
        async for chunk in response.content.iter_any():
            watchdog.activity += 1
            ready = boundary.feed(chunk)
            if ready:
                await send({"type": "http.response.body", "body": ready, "more_body": True})
                last_sent = ready
                if tap is not None:
                    tap.feed(ready)
    except (TimeoutError, aiohttp.ServerTimeoutError):
        error = EngineTimeoutError("The engine stopped sending the stream.")
    except aiohttp.ClientError:
        error = EngineGenerateError("The engine's stream broke off.")
    except asyncio.CancelledError:
        if tap is not None:
            tap.log("client_disconnected")
        raise
    if error is not None and last_sent.rstrip(b"\r\n").endswith(b"data: [DONE]"):
        response.close()
        error = None  # the answer was complete; only the connection's end was unclean
        boundary.flush()  # nothing after [DONE] is worth a broken event
    if error is None:
        tail = boundary.flush()
        await send({"type": "http.response.body", "body": tail})
        if tap is not None:
            tap.feed(tail)
            tap.log("upstream_closed")
        return
    response.close()
    # A partial event is dropped so that the error event reaches the client well-formed.
    await send({"type": "http.response.body", "body": error_event(error)})
    if tap is not None:
        tap.log(f"error:{error.code}")


def error_event(error: GatewayError) -> bytes:
    return encode_event(error.json())
