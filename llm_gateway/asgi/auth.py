"""The key check of the ASGI face, for HTTP and WebSocket scopes, and the face's one
fail-closed helper: whatever the guarded prefixes say, a request that reaches an engine
carries a checked key (``principal_of``)."""

from __future__ import annotations

from collections.abc import Callable

from ..core import key_required
from ..core.request import Principal
from ..ingress.paths import app_path
from ..ingress.types import ASGIApp, Receive, Scope, Send
from ..keys import SCOPE_KEY
from ..runtime import Runtime


class AuthMiddleware:
    """Checks the key of requests under the guarded prefixes; leaves it in the scope."""

    def __init__(self, app: ASGIApp, runtime: Callable[[], Runtime]) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            authenticator = self.runtime().authenticator
            if authenticator.needs_auth(scope.get("method"), app_path(scope)):
                websocket = scope["type"] == "websocket"
                subprotocols = scope.get("subprotocols", ()) if websocket else None
                scope[SCOPE_KEY] = await authenticator.authenticate(scope["headers"], subprotocols)
        await self.app(scope, receive, send)


async def principal_of(scope: Scope, runtime: Runtime) -> Principal | None:
    """The scope's checked key; if the prefixes left its path unguarded, checked here (fail
    closed), unless the request needs none (a preflight, an open gateway)."""
    principal: Principal | None = scope.get(SCOPE_KEY)
    if principal is None and key_required(scope.get("method") or "GET", runtime.relay.options):
        websocket = scope["type"] == "websocket"
        subprotocols = scope.get("subprotocols", ()) if websocket else None
        principal = await runtime.authenticator.authenticate(scope["headers"], subprotocols)
        scope[SCOPE_KEY] = principal
    return principal
