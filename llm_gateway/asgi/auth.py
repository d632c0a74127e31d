"""The key check of the ASGI face, for HTTP and WebSocket scopes under the guarded prefixes."""

from __future__ import annotations

from ..authentication import SCOPE_KEY, authenticate, needs_auth
from ..paths import app_path
from ..types import ASGIApp, Receive, Scope, Send


class AuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and needs_auth(
            scope.get("method"), app_path(scope)
        ):
            websocket = scope["type"] == "websocket"
            subprotocols = scope.get("subprotocols", ()) if websocket else None
            scope[SCOPE_KEY] = await authenticate(scope["headers"], subprotocols)
        await self.app(scope, receive, send)
