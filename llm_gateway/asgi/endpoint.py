"""The relay as a plain ASGI endpoint: the fast face of the core.

Django's request cycle costs about 1 ms a request, more than the whole budget of a relayed
call, so under ``RELAY_PREFIX`` (``/v1``) requests come here straight from the ASGI
middleware. It reads the body, hands a ``GatewayRequest`` to the core and sends the
``Reply``; when the client disconnects, the task is cancelled, which closes the upstream
answer so the engine stops generating.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from ..core.relay import Relay
from ..core.request import GatewayRequest, Reply
from ..ingress.body import BodyLimit
from ..ingress.request_id import SCOPE_KEY as REQUEST_ID_KEY
from ..ingress.types import Receive, Scope, Send
from ..runtime import Runtime
from .auth import principal_of


class ClientDisconnected(Exception):
    """The client left before the request body was read."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    body = BodyLimit(limit)
    for name, value in scope["headers"]:
        if name == b"content-length":
            body.declared(value)
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        body.add(len(chunk))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


async def relay_endpoint(
    scope: Scope, receive: Receive, send: Send, sub_path: str, runtime: Runtime, body_limit: int
) -> None:
    """Serve one request for ``sub_path`` (the canonical path below the relay prefix)."""
    principal = await principal_of(scope, runtime)
    try:
        body = await read_body(scope, receive, body_limit)
    except ClientDisconnected:
        return
    request = GatewayRequest(
        scope["method"],
        sub_path,
        scope.get("query_string", b""),
        scope["headers"],
        body,
        scope.get(REQUEST_ID_KEY) or "",
        principal,
        client_address(scope),
    )
    await cancel_on_disconnect(_exchange(runtime.relay, request, send), receive)


async def _exchange(relay: Relay, request: GatewayRequest, send: Send) -> None:
    reply = await relay.handle(request)
    try:
        await send_reply(reply, send)
    finally:
        await reply.aclose()


async def send_reply(reply: Reply, send: Send) -> None:
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    if reply.content is not None:
        await send({"type": "http.response.body", "body": reply.content})
        return
    assert reply.chunks is not None
    async for chunk in reply.chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def cancel_on_disconnect(coro: Awaitable[None], receive: Receive) -> None:
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
