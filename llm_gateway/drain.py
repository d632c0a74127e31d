"""A graceful drain for daphne, which has none: on SIGTERM (or SIGINT) daphne cancels every
application at once (``kill_all_applications``; its issue #177), so every open stream dies.

``install()`` (the launcher calls it) replaces Twisted's signal handlers. The first signal:

1. readiness turns to 503 and the relay answers new requests 503 ``server_shutting_down``
   with ``Connection: close``, and Twisted closes every connection after its current answer;
2. the listening sockets close at once: new connections are refused, load balancers move on;
3. requests in flight run to their end, for up to ``LLM_GATEWAY_DRAIN_SECONDS``;
4. at that deadline the answers still open end with a final SSE error event
   (``server_shutting_down``) and their upstream requests are closed;
5. the reactor stops: the gateway's shutdown stops its background work and writes the
   request log's queue; the process exits 0.

A second signal skips the wait (step 4 at once).
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from typing import Any

from .conf import conf
from .errors import ServerShuttingDown

logger = logging.getLogger(__name__)

GRACE_SECONDS = 1.0  # after the deadline, for the final events to leave
POLL_SECONDS = 0.05

_state: dict[str, Any] = {"started": None, "deadline": None, "server": None}
_ports: list[Any] = []  # daphne's listening ports (recorded as it opens them)
_sockets: list[socket.socket] = []  # the launcher's own copies of the listening sockets


def draining() -> bool:
    return _state["started"] is not None


def install(sockets: list[socket.socket]) -> None:
    """Called before daphne runs: record its ports as it listens, take over the signals
    once the reactor runs, and never let a drained connection stay open."""
    from daphne.server import Server
    from twisted.web import http

    reactor = _reactor()
    _sockets.extend(sockets)
    listen_success = Server.listen_success

    def recording(self: Any, port: Any) -> None:
        _state["server"] = self
        _ports.append(port)
        listen_success(self, port)

    Server.listen_success = recording
    check_persistence = http.HTTPChannel.checkPersistence

    def persistence(self: Any, request: Any, version: bytes) -> bool:
        if draining():
            request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
            return False
        return bool(check_persistence(self, request, version))

    http.HTTPChannel.checkPersistence = persistence  # type: ignore[method-assign]

    def take_signals() -> None:
        loop = reactor._asyncioEventloop

        def on_signal(signum: int, _frame: object) -> None:
            loop.call_soon_threadsafe(_on_signal, signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        for signum in _early:
            loop.call_soon(_on_signal, signum)

    reactor.callWhenRunning(take_signals)


_early: list[int] = []  # signals that came while the process was starting


def hold_signals() -> None:
    """From the first line of the launcher: a SIGTERM while Django and the application load
    (a worker just started) is kept, and drains once the reactor runs, instead of killing
    the process by the default handler."""

    def on_early_signal(signum: int, _frame: object) -> None:
        _early.append(signum)

    signal.signal(signal.SIGTERM, on_early_signal)
    signal.signal(signal.SIGINT, on_early_signal)


def _on_signal(signum: int) -> None:
    if draining():
        logger.warning("second %s: not waiting for the requests in flight", _name(signum))
        _state["deadline"] = time.monotonic()
        return
    begin(signum)


def begin(signum: int = signal.SIGTERM) -> None:
    from . import gateway
    from .realtime import going_away

    now = time.monotonic()
    _state["started"], _state["deadline"] = now, now + conf.DRAIN_SECONDS
    gateway.get_relay().accepting = False
    going_away()  # realtime sessions: 1001, so that clients reconnect elsewhere
    for port in _ports:
        port.stopListening()
    for sock in _sockets:
        sock.close()
    server = _state["server"]
    for protocol in list(server.connections) if server is not None else []:
        channel = getattr(protocol, "channel", None)
        if channel is not None:
            channel.persistent = False  # closed after the answer in progress
    logger.warning(
        "%s: draining, %d requests in flight, new connections refused; at most %.0f s",
        _name(signum),
        in_flight(),
        conf.DRAIN_SECONDS,
    )
    _schedule(_watch)


def in_flight() -> int:
    """Requests (and WebSocket sessions) whose application has not finished."""
    server = _state["server"]
    if server is None:
        return 0
    count = 0
    for details in list(server.connections.values()):
        instance = details.get("application_instance")
        if "disconnected" not in details and instance is not None and not instance.done():
            count += 1
    return count


def _watch() -> None:
    if in_flight() == 0:
        _stop("every request in flight ended")
    elif time.monotonic() >= _state["deadline"]:
        _deadline()
    else:
        _schedule(_watch)


def _deadline() -> None:
    from . import gateway

    error = ServerShuttingDown("The gateway shut down before this answer was complete.")
    cut = gateway.get_relay().interrupt(error)
    logger.warning("drain deadline: %d answers ended with server_shutting_down", cut)
    _state["grace"] = time.monotonic() + GRACE_SECONDS
    _schedule(_after_deadline)


def _after_deadline() -> None:
    if in_flight() == 0 or time.monotonic() >= _state["grace"]:
        _stop("deadline")
    else:
        _schedule(_after_deadline)


def _stop(why: str) -> None:
    started = _state["started"]
    logger.warning("drained (%s) in %.2f s: stopping", why, time.monotonic() - started)
    reactor = _reactor()
    if reactor.running:
        reactor.stop()


def _schedule(step: Any) -> None:
    _reactor().callLater(POLL_SECONDS, step)


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _name(signum: int) -> str:
    return signal.Signals(signum).name
