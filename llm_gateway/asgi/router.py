"""Sends the relay prefix to the core's ASGI endpoint and everything else to the project's
application; runs the gateway's start-up and shutdown (ASGI lifespan, or daphne's reactor)."""

from __future__ import annotations

from .. import gateway
from ..conf import conf
from ..observe import metrics
from ..paths import app_path, canonical, is_under
from ..types import ASGIApp, Receive, Scope, Send
from .endpoint import relay_endpoint

METRICS_PATH = "/metrics"


class GatewayRouter:
    def __init__(self, fallback: ASGIApp) -> None:
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        gateway.start()
        if scope["type"] == "http" and scope["path"] == METRICS_PATH and conf.METRICS:
            await self._metrics(scope, send)
            return
        prefix = conf.RELAY_PREFIX
        if prefix is not None and scope["type"] == "http":
            path = canonical(app_path(scope))
            if is_under(path, prefix):
                await relay_endpoint(scope, receive, send, path[len(prefix) :])
                return
        await self.fallback(scope, receive, send)

    async def _metrics(self, scope: Scope, send: Send) -> None:
        authorization = next((v for n, v in scope["headers"] if n == b"authorization"), None)
        status, headers, body = metrics.render(authorization, gateway.get_relay().pool)
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                gateway.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await gateway.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
