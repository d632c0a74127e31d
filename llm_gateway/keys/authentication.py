"""Bearer-key authentication, shared by both faces (ASGI middleware, Django middleware).

Skipped, as in vLLM: OPTIONS (CORS preflight) and paths outside the guarded prefixes.
Unlike vLLM, the failure is an OpenAI-shaped 401 with ``WWW-Authenticate: Bearer``, and the
missing / wrong-scheme / malformed / unknown cases are told apart (as DRF does) without ever
echoing the key. The relay core refuses any request that reached it without a key, whatever
the prefixes say (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..core.request import Principal
from ..errors import AuthenticationFailed
from ..ingress.paths import is_guarded
from .store import KeyStore, Verdict

SCOPE_KEY = "llm_gateway.api_key"  # where the ASGI face leaves the Principal
AUTHORIZATION = b"authorization"
KEY_SUBPROTOCOL = "openai-insecure-api-key."


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The token of the Authorization header, or AuthenticationFailed saying why."""
    values = [v for n, v in headers if n == AUTHORIZATION]
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


def websocket_token(headers: Iterable[tuple[bytes, bytes]], subprotocols: Iterable[str]) -> str:
    """A WebSocket's key: its Authorization header, else the subprotocol browsers send it in
    (``openai-insecure-api-key.<key>``, which is never echoed back)."""
    headers = list(headers)
    if any(name == AUTHORIZATION for name, _ in headers):
        return bearer_token(headers)
    for subprotocol in subprotocols:
        token = subprotocol.removeprefix(KEY_SUBPROTOCOL)
        if token and token != subprotocol:
            return token
    raise AuthenticationFailed(
        "Missing API key: send 'Authorization: Bearer <key>' or the subprotocol "
        f"'{KEY_SUBPROTOCOL}<key>'.",
        code="missing_api_key",
    )


class Authenticator:
    """Who sent a request: its key, checked against the store. Every refusal is reported to
    ``on_failure`` with its code (the runtime counts them in the metrics)."""

    def __init__(
        self,
        store: KeyStore,
        prefixes: Iterable[str] = ("/v1",),
        on_failure: Callable[[str | None], None] | None = None,
    ) -> None:
        self.store = store
        self.prefixes = tuple(prefixes)
        self.on_failure = on_failure

    async def authenticate(
        self, headers: Iterable[tuple[bytes, bytes]], subprotocols: Iterable[str] | None = None
    ) -> Principal:
        """Who sent these headers (a WebSocket: or its subprotocols); AuthenticationFailed
        if nobody we know."""
        try:
            if subprotocols is None:
                token = bearer_token(headers)
            else:
                token = websocket_token(headers, subprotocols)
            verdict, principal = await self.store.authenticate(token)
            if verdict is not Verdict.OK or principal is None:
                raise AuthenticationFailed(verdict.value)
        except AuthenticationFailed as exc:
            if self.on_failure is not None:
                self.on_failure(exc.code)
            raise
        return principal

    def needs_auth(self, method: str | None, path: str) -> bool:
        """Whether a request (``path`` with the script prefix removed) must carry a key."""
        if method == "OPTIONS":
            return False
        return is_guarded(path, self.prefixes)
