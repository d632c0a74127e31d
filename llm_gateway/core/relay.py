"""The relay: admit, open, reply, observe.

``Relay.handle`` takes a ``GatewayRequest`` and returns a ``Reply`` (each request an
``exchange.Exchange``); ``Relay.session`` gives a face that relays a session itself (realtime)
the same lifecycle. Bodies go upstream byte for byte; JSON is parsed only on the OpenAI
endpoints, to refuse a broken body early and to read ``model``.
"""

from __future__ import annotations

from ..errors import AuthenticationFailed, GatewayError, NotFound, ServerShuttingDown
from ..upstream.pool import UpstreamPool
from .exchange import Exchange
from .hooks import Observer, Policy, Responder
from .lifecycle import Lifecycle
from .options import RelayOptions
from .request import GatewayRequest, Reply
from .schedule import Scheduler

# The paths below the API prefix the gateway answers itself: never relayed to an engine.
OWN = "/gateway/"


class Relay:
    def __init__(
        self,
        pool: UpstreamPool,
        policies: list[Policy] | None = None,
        observers: list[Observer] | None = None,
        options: RelayOptions | None = None,
        responders: list[Responder] | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.pool = pool
        self.scheduler = scheduler  # the gateway queue (None or disabled: none)
        self.policies = policies or []
        self.observers = observers or []
        self.responders = responders or []
        self.options = options or RelayOptions()
        self.accepting = True  # False while the process drains: new requests get 503
        self.streams: set[Exchange] = set()  # answers being relayed now

    def _refuse_while_draining(self) -> None:
        if not self.accepting:
            # The drain has Twisted close the connection after it (Connection: close).
            raise ServerShuttingDown(
                "The gateway is shutting down; send the request again (to another process)."
            )

    async def handle(self, request: GatewayRequest) -> Reply:
        self._refuse_while_draining()
        if request.path.startswith(OWN) or request.path == OWN[:-1]:
            return await self._answer_own(request)
        exchange = Exchange(self, request)
        try:
            return await exchange.open()
        except GatewayError as exc:
            exc.add_headers(exchange.admission_headers())
            exchange.record.status = exc.status
            exchange.end(f"error:{exc.code}")
            exchange.close()
            raise
        except BaseException:  # cancelled: the client left while we waited
            exchange.end("client_disconnected")
            exchange.close()
            raise

    async def _answer_own(self, request: GatewayRequest) -> Reply:
        """The calling key's own questions: a key is required whatever the auth prefixes say,
        and a path no responder knows is a 404, never sent to an engine."""
        if request.api_key is None:
            raise AuthenticationFailed(
                "Missing API key: send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        for responder in self.responders:
            answer = await responder.respond(request)
            if answer is not None:
                status, content = answer
                headers = [(b"content-type", b"application/json")]
                return Reply(status, headers, content=content)
        raise NotFound(f"No such gateway endpoint: {request.method} {request.path}.")

    def session(self, request: GatewayRequest) -> Lifecycle:
        """The lifecycle of a session the face relays itself (realtime): admit it, lease a
        replica through its dispatch, end and close it, as the core does for an exchange."""
        self._refuse_while_draining()
        return Lifecycle(self, request)

    def interrupt(self, error: GatewayError) -> int:
        """End every answer being relayed with ``error`` (the drain's deadline): a stream gets
        it as its final event, and its upstream request is closed. Returns how many."""
        streams = list(self.streams)
        for exchange in streams:
            exchange.interrupt(error)
        return len(streams)
