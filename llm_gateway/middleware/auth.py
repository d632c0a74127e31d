"""Bearer-key authentication for the guarded prefixes (``/v1`` by default).

Skipped, as in vLLM: OPTIONS (CORS preflight) and paths outside the guarded prefixes.
Unlike vLLM, the failure is an OpenAI-shaped 401 with ``WWW-Authenticate: Bearer``, and the
missing / wrong-scheme / malformed / unknown cases are told apart (as DRF does) without ever
echoing the key.
"""

from __future__ import annotations

from ..conf import conf
from ..errors import AuthenticationFailed
from ..keystore import Verdict, key_store
from ..paths import app_path, is_guarded
from ..types import ASGIApp, Receive, Scope, Send

SCOPE_KEY = "llm_gateway.api_key"
AUTHORIZATION = b"authorization"


def bearer_token(scope: Scope) -> str:
    """The token of the request's Authorization header, or AuthenticationFailed saying why."""
    values = [v for n, v in scope["headers"] if n == AUTHORIZATION]
    if not values:
        raise AuthenticationFailed(
            "Missing API key: send it as 'Authorization: Bearer <key>'.", code="missing_api_key"
        )
    if len(values) > 1:
        raise AuthenticationFailed("Send exactly one Authorization header.")
    scheme, _, token = values[0].strip().partition(b" ")
    if scheme.lower() != b"bearer":
        raise AuthenticationFailed("Unsupported authorization scheme: use 'Bearer <key>'.")
    token = token.strip()
    if not token or b" " in token or b"\t" in token:
        raise AuthenticationFailed("Malformed Authorization header: use 'Bearer <key>'.")
    try:
        return token.decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationFailed("Invalid API key.") from None


def needs_auth(scope: Scope) -> bool:
    if scope["type"] == "http" and scope["method"] == "OPTIONS":
        return False
    return is_guarded(app_path(scope), conf.AUTH_PREFIXES)


class AuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and needs_auth(scope):
            verdict, principal = await key_store.authenticate(bearer_token(scope))
            if verdict is not Verdict.OK:
                raise AuthenticationFailed(verdict.value)
            scope[SCOPE_KEY] = principal
        await self.app(scope, receive, send)
