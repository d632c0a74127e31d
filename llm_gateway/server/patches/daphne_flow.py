"""Backpressure for daphne's streamed HTTP responses and WebSocket sessions.

ASGI leaves flow control to the server, and daphne has none: its ``send`` hands each body
message to Twisted's transport and returns at once. A client that reads slowly made the
gateway read the engine at the engine's speed and buffer the difference in memory, without
limit (issue 17 measured a stalled reader costing the whole answer). Twisted does tell a
registered push producer when the connection's send buffer fills (``pauseProducing``) and
when it drains (``resumeProducing``): daphne is patched so that every streamed response
registers one, and ``send`` of a body waits while the transport
is paused. The relay then stops reading the engine, aiohttp stops reading its socket, and
the engine's own writes block: a slow client costs the socket buffers, not the answer.

A WebSocket session (``/v1/realtime``) gets the same: a frame's ``send`` waits while the
client's connection is paused, so the relay stops reading the engine's socket. A client that
leaves while ``send`` waits is seen as usual (``http.disconnect`` or ``websocket.disconnect``
cancels the relay's task), and the producer lets go of a closed connection too.

A client that reads nothing at all for ``send_timeout`` seconds (``LLM_GATEWAY_SEND_TIMEOUT``,
as nginx's ``send_timeout``) has its connection cut: the application then sees the client
leave, so the engine's request is closed and its slot freed, and the request's own context
says why (``core.Stall``: its record ends ``client_stalled``). A slow reader that
keeps reading never waits that long at once, and is not cut.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from ...core import CLIENT_STALL
from .guard import require_assigned, require_attributes, require_method, require_version

MARK = "_llm_gateway_flow"


class Writable:
    """A Twisted push producer whose state is an ``asyncio.Event``: set while writable."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.event.set()

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's IPushProducer)
        self.event.clear()

    def resumeProducing(self) -> None:  # noqa: N802
        self.event.set()

    def stopProducing(self) -> None:  # noqa: N802
        self.event.set()


def _may_register(request: Any) -> bool:
    """Whether the request can take a producer now: its connection is open and holds none
    (a pipelined request behind another's stream waits its turn unthrottled)."""
    channel = request.channel
    return (
        channel is not None
        and not request.finished
        and request.producer is None
        and getattr(channel, "_requestProducer", None) is None
    )


def _session_writable(protocol: Any) -> Writable | None:
    """The WebSocket's producer, registered on its first frame out. Its transport still
    names the HTTP channel the upgrade came through as its producer: that channel serves
    nothing more on this connection, so the session takes its place."""
    writable: Writable | None = getattr(protocol, "_llm_gateway_writable", None)
    transport = protocol.transport
    if writable is None and transport is not None and protocol.state == protocol.STATE_OPEN:
        writable = protocol._llm_gateway_writable = Writable()
        try:
            if getattr(transport, "producer", None) is not None:
                transport.unregisterProducer()
            transport.registerProducer(writable, True)
        except RuntimeError:  # a wrapped transport that keeps its own: never paused, then
            pass
    return writable


def check() -> None:
    require_version("daphne")
    require_version("Twisted")
    from daphne.http_protocol import WebRequest
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.web.http import HTTPChannel, Request

    require_method(Server, "handle_reply", "self", "protocol", "message")
    require_attributes(WebRequest, "registerProducer", "unregisterProducer", "producer")
    require_assigned(Request, "__init__", "channel")
    require_attributes(Request, "finished")
    require_attributes(HTTPChannel, "_requestProducer")
    require_attributes(WebSocketProtocol, "STATE_OPEN")


async def _wait_writable(
    writable: Writable, transport: Any, send_timeout: Callable[[], float]
) -> None:
    """Until the connection takes more; after ``send_timeout`` seconds of none, cut it, and
    end the application's ``send`` as a client that left ends it (cancelled: the relay stops
    at once, and daphne takes a cancelled application as a client gone, not an error)."""
    seconds = send_timeout()
    if seconds <= 0:
        await writable.event.wait()
        return
    try:
        await asyncio.wait_for(writable.event.wait(), seconds)
    except TimeoutError:
        stall = CLIENT_STALL.get()  # this request's, from its context: its record says why
        if stall is not None:
            stall.stalled = True
        if transport is not None:
            transport.abortConnection()
        raise asyncio.CancelledError(f"the client read nothing for {seconds:g} s") from None


def install(send_timeout: Callable[[], float] = lambda: 0.0) -> None:
    from daphne.http_protocol import WebRequest
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    if getattr(Server, MARK, False):
        return
    handle_reply = Server.handle_reply

    @functools.wraps(handle_reply)
    async def replying(self: Any, protocol: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if isinstance(protocol, WebSocketProtocol) and kind == "websocket.send":
            await handle_reply(self, protocol, message)
            session = _session_writable(protocol)
            if session is not None and not session.event.is_set():
                # set again on resume, or when the socket closes
                await _wait_writable(session, protocol.transport, send_timeout)
            return
        if not isinstance(protocol, WebRequest) or kind != "http.response.body":
            await handle_reply(self, protocol, message)
            return
        writable: Writable | None = getattr(protocol, "_llm_gateway_writable", None)
        more = message.get("more_body", False)
        if more and writable is None and _may_register(protocol):
            writable = protocol._llm_gateway_writable = Writable()
            protocol.registerProducer(writable, True)
        elif not more and writable is not None:
            protocol._llm_gateway_writable = None
            if protocol.channel is not None:
                protocol.unregisterProducer()  # before finish(): Twisted insists
            writable = None
        await handle_reply(self, protocol, message)
        if writable is not None and not writable.event.is_set():
            if protocol.channel is None or protocol.finished:
                return
            await _wait_writable(writable, protocol.channel.transport, send_timeout)

    Server.handle_reply = replying
    setattr(Server, MARK, True)
