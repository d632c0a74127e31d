"""One access line per request on the ``llm_gateway.access`` logger, in place of daphne's.

Client, method, path, status, bytes sent, duration and request id; the path is the scope's
(no query string, so no secrets passed as query parameters). When the logger is off the
middleware adds nothing to the request.
"""

from __future__ import annotations

import logging
import time

from ..ingress.types import ASGIApp, Message, Receive, Scope, Send
from ..observe.logs import ACCESS_LOGGER

logger = logging.getLogger(ACCESS_LOGGER)


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        sent = 0

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            client = scope.get("client")
            address = f"{client[0]}:{client[1]}" if client else "-"
            duration_ms = (time.perf_counter() - start) * 1000
            path = scope.get("path", "")
            logger.info(
                '%s "%s %s" %d %d %.1fms',
                address,
                scope["method"],
                path,
                status,
                sent,
                duration_ms,
                extra={
                    "client": address,
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "bytes": sent,
                    "duration_ms": round(duration_ms, 3),
                },
            )
