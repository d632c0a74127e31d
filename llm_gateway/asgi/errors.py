"""Turns exceptions into OpenAI-shaped JSON answers, never an HTML page.

Once a response has started its status cannot change (Starlette's rule): the relay itself
ends a started stream with an SSE error event, and anything else escaping after the start is
logged and raised on to the server, which cuts the connection (``server.patches.
daphne_reaper`` under daphne), so the client sees a broken answer, never one that looks whole.
"""

from __future__ import annotations

from ..errors import WS_CLOSE_BASE, GatewayError, ServerErrorLog, logger
from ..ingress.types import ASGIApp, Message, Receive, Scope, Send


async def send_error(send: Send, error: GatewayError) -> None:
    body = error.json()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *error.headers(),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log_server_error = ServerErrorLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except GatewayError as exc:
            if started:
                logger.warning("error after the response started: %s", exc.message)
                raise
            if exc.status >= 500:
                self.log_server_error(scope["method"], scope["path"], exc)
            await send_error(send, exc)
        except Exception:
            logger.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if started:
                raise
            await send_error(send, GatewayError("Internal server error."))

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False

        async def tracking_send(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except GatewayError as exc:
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": exc.close_code()})
        except ValueError as exc:
            # channels' URLRouter: "No route found for path": a 403 handshake, not daphne's 500.
            if accepted or "No route found" not in str(exc):
                raise
            await send({"type": "websocket.close", "code": WS_CLOSE_BASE + 404})
