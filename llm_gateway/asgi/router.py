"""Sends the relay prefix to the core's ASGI endpoint and everything else to the project's
application; serves ``/metrics``; runs the runtime's start-up and shutdown (ASGI lifespan;
under daphne, ``llm_gateway.server`` stops it before the reactor stops)."""

from __future__ import annotations

from collections.abc import Callable

from ..conf import conf
from ..ingress.paths import app_path, canonical, is_under
from ..ingress.types import ASGIApp, Receive, Scope, Send
from ..runtime import Runtime
from .endpoint import relay_endpoint

METRICS_PATH = "/metrics"


class GatewayRouter:
    def __init__(self, fallback: ASGIApp, runtime: Callable[[], Runtime]) -> None:
        self.fallback = fallback
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        runtime = self.runtime()
        runtime.start()
        if scope["type"] == "http" and scope["path"] == METRICS_PATH and runtime.metrics:
            await self._metrics(scope, send, runtime)
            return
        prefix = conf.RELAY_PREFIX
        if prefix is not None and scope["type"] == "http":
            path = canonical(app_path(scope))
            if is_under(path, prefix):
                sub_path = path[len(prefix) :]
                await relay_endpoint(scope, receive, send, sub_path, runtime, conf.MAX_BODY_BYTES)
                return
        await self.fallback(scope, receive, send)

    async def _metrics(self, scope: Scope, send: Send, runtime: Runtime) -> None:
        assert runtime.metrics is not None
        authorization = next((v for n, v in scope["headers"] if n == b"authorization"), None)
        status, headers, body = runtime.metrics.render(authorization)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.runtime().start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runtime().aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
