"""The gateway's ASGI entry point, wrapped around a project's own ASGI application.

    application = gateway_application(get_asgi_application())

Every request passes X-Request-Id, the access log, error rendering, then the key check; then ``/v1``
goes to the relay and everything else (admin, /health, ...) to the wrapped application.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from .keystore import key_store
from .middleware.access_log import AccessLogMiddleware
from .middleware.auth import AuthMiddleware
from .middleware.errors import ErrorMiddleware
from .middleware.request_id import RequestIdMiddleware
from .paths import app_path, canonical, is_under
from .relay import API_PREFIX, relay
from .tuning import tune_process
from .types import ASGIApp, Receive, Scope, Send
from .upstream import upstream
from .watchdog import watchdog

logger = logging.getLogger(__name__)


async def shutdown() -> None:
    """Stop the background tasks and close the upstream connections of this process."""
    await watchdog.aclose()
    await key_store.aclose()
    await upstream.aclose()


class GatewayRouter:
    def __init__(self, fallback: ASGIApp) -> None:
        self.fallback = fallback
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._start(loop)
        if scope["type"] == "http" and is_under(canonical(app_path(scope)), API_PREFIX):
            await relay(scope, receive, send)
            return
        await self.fallback(scope, receive, send)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """First request on this loop: start the watchdog and hook shutdown into daphne."""
        self._loop = loop
        watchdog.ensure_started()
        if "twisted.internet.reactor" in sys.modules:  # daphne has no ASGI lifespan
            from twisted.internet import defer
            from twisted.internet import reactor as twisted_reactor

            reactor: Any = twisted_reactor
            reactor.addSystemEventTrigger(
                "before",
                "shutdown",
                lambda: defer.Deferred.fromFuture(loop.create_task(shutdown())),
            )

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                watchdog.ensure_started()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def gateway_application(fallback: ASGIApp) -> Any:
    """Wrap a project's ASGI app with the gateway: the /v1 relay and its middleware.

    Call it once, at the end of start-up (asgi.py): it also tunes the process (``tuning``).
    """
    tune_process()
    return RequestIdMiddleware(
        AccessLogMiddleware(ErrorMiddleware(AuthMiddleware(GatewayRouter(fallback))))
    )
