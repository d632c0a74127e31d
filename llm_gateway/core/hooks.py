"""The hook points of the core: policies before the upstream call, observers after, and
responders for the paths the gateway answers itself (``/gateway/...``), never an engine.

Policies may refuse a request with a ``GatewayError`` (model not allowed, rate limited,
budget spent) and may hold something until it ends (an ``Admission``: a reserved slot, a
token reservation to settle). Observers are told of each request when it arrives, may tap
the body chunks after each was sent, and get the ``RequestRecord`` once it ended. The core
calls them through these classes only; it knows none of them by name.

Observers and taps run on the event loop between two chunks: they must not block or wait.
Heavy work (database writes) goes to a queue that a background task drains.
"""

from __future__ import annotations

from ..errors import GatewayError
from ..upstream.client import Upstream
from .record import RequestRecord
from .request import GatewayRequest


class Admission:
    """What a policy holds for an admitted request: reply headers, and a settle step."""

    headers: list[tuple[bytes, bytes]] = []
    rewrites = False  # True: whole answers go through ``rewrite`` (read whole, even unsized)

    def rewrite(self, request: GatewayRequest, content: bytes) -> bytes:
        """A whole answer's body, as the client may see it (a model list, filtered)."""
        return content

    def settle(self, record: RequestRecord) -> None:
        """The request ended (however it ended): release or settle what was reserved."""


class Responder:
    """Answers the calling key's own questions under ``/gateway/`` (its usage, its
    requests). ``respond`` returns the answer's status and JSON body, or None: not mine."""

    async def respond(self, request: GatewayRequest) -> tuple[int, bytes] | None:
        return None


class Policy:
    async def admit(self, request: GatewayRequest, record: RequestRecord) -> Admission | None:
        """Raise a ``GatewayError`` to refuse; return an ``Admission`` to hold something."""
        return None

    async def aclose(self) -> None:
        """The gateway stops: end background work, close connections."""


class Tap:
    """Sees each try on a replica, and each body chunk after it went to the client (so it
    never delays one). A tap that overrides ``attempt`` is told of every try; one that does
    not costs the dispatch nothing."""

    def attempt(self, upstream: Upstream) -> list[tuple[str, str]]:
        """The request goes to ``upstream`` now (once per try: a failover tries again).
        Returns headers for the engine (a trace context), which replace the client's own
        headers of the same names."""
        return []

    def attempted(self, status: int, error: GatewayError | None) -> None:
        """That try's status line, or ``error``: it failed before one."""

    def feed(self, data: bytes) -> None:
        pass

    def finish(self, record: RequestRecord) -> None:
        pass


class Observer:
    def begin(self, request: GatewayRequest, record: RequestRecord) -> Tap | None:
        """The request arrived; return a ``Tap`` to see its answer's bytes."""
        return None

    def finish(self, record: RequestRecord) -> None:
        """The request ended; the record is complete."""
