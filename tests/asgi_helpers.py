"""Drive an ASGI app directly, for unit tests of the middleware."""

from __future__ import annotations

import asyncio
from typing import Any


def http_scope(
    path: str = "/v1/models",
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [],
        **extra,
    }


async def call(
    app: Any, scope: dict[str, Any], body: bytes = b""
) -> tuple[int, dict[bytes, list[bytes]], bytes, list[dict[str, Any]]]:
    messages: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = next((m for m in messages if m["type"] == "http.response.start"), None)
    status = start["status"] if start else 0
    headers: dict[bytes, list[bytes]] = {}
    for name, value in (start or {}).get("headers", []):
        headers.setdefault(name.lower(), []).append(value)
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return status, headers, content, messages


async def ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 'ok' (or accepts a WebSocket), recording what the middleware put in scope."""
    ok_app.last_scope = scope  # type: ignore[attr-defined]
    if scope["type"] == "websocket":
        await send({"type": "websocket.accept"})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})
