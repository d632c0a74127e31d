"""A graceful drain for daphne, which has none: on SIGTERM (or SIGINT) daphne cancels every
application at once (``kill_all_applications``; its issue #177), so every open stream dies.

Once the reactor runs, the drain takes over Twisted's signal handlers (under the launcher and
under the plain ``daphne`` CLI alike). The first signal:

1. the runtime drains: readiness turns to 503, the relay answers new requests 503
   ``server_shutting_down``, realtime sessions are told to go away (1001), and Twisted closes
   every connection after its current answer (``Connection: close``);
2. the listening sockets close at once: new connections are refused, load balancers move on;
3. requests in flight run to their end, for up to ``LLM_GATEWAY_DRAIN_SECONDS``;
4. at that deadline the answers still open end with a final SSE error event
   (``server_shutting_down``) and their upstream requests are closed;
5. the reactor stops: the runtime's shutdown stops its background work and writes the
   request log's queue; the process exits 0.

A second signal skips the wait (step 4 at once).
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from ..errors import ServerShuttingDown

logger = logging.getLogger(__name__)

GRACE_SECONDS = 1.0  # after the deadline, for the final events to leave
POLL_SECONDS = 0.05


class Drain:
    """The drain of one server process: its ports, its signals, its deadline.

    ``runtime``: what drains (its ``begin_drain()`` and ``interrupt()``); ``seconds``: how
    long requests in flight may run on. Both are asked at the signal, not before.
    """

    def __init__(self, runtime: Callable[[], Any], seconds: Callable[[], float]) -> None:
        self.runtime = runtime
        self.seconds = seconds
        self.started: float | None = None  # monotonic; None: not draining
        self.deadline = 0.0
        self.grace = 0.0
        self.server: Any = None  # daphne's Server, once it listens
        self.ports: list[Any] = []  # daphne's listening ports
        self.sockets: list[socket.socket] = []  # the launcher's own copies of them
        self.early: list[int] = []  # signals that came while the process was starting
        self.reactor: Any = None

    @property
    def draining(self) -> bool:
        return self.started is not None

    def listened(self, server: Any, port: Any) -> None:
        """daphne opened a listening port (the patch in ``patches.daphne_drain`` tells)."""
        self.server = server
        self.ports.append(port)

    def adopt(self, sockets: list[socket.socket]) -> None:
        """The launcher's listening sockets, closed with the ports."""
        self.sockets.extend(sockets)

    def hold_signals(self) -> None:
        """From the first line of the launcher: a SIGTERM while Django and the application
        load (a worker just started) is kept, and drains once the reactor runs, instead of
        killing the process by the default handler."""
        signal.signal(signal.SIGTERM, self._early_signal)
        signal.signal(signal.SIGINT, self._early_signal)

    def _early_signal(self, signum: int, _frame: object) -> None:
        self.early.append(signum)

    def install(self, reactor: Any) -> None:
        """Take the signals over once the reactor runs (after Twisted installed its own)."""
        self.reactor = reactor
        reactor.callWhenRunning(self._take_signals)

    def _take_signals(self) -> None:
        loop = self.reactor._asyncioEventloop

        def on_signal(signum: int, _frame: object) -> None:
            loop.call_soon_threadsafe(self._on_signal, signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        for signum in self.early:
            loop.call_soon(self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        if self.draining:
            logger.warning("second %s: not waiting for the requests in flight", _name(signum))
            self.deadline = time.monotonic()
            return
        self.begin(signum)

    def begin(self, signum: int = signal.SIGTERM) -> None:
        now = time.monotonic()
        seconds = self.seconds()
        self.started, self.deadline = now, now + seconds
        self.runtime().begin_drain()
        for port in self.ports:
            port.stopListening()
        for sock in self.sockets:
            sock.close()
        server = self.server
        for protocol in list(server.connections) if server is not None else []:
            channel = getattr(protocol, "channel", None)
            if channel is not None:
                channel.persistent = False  # closed after the answer in progress
        logger.warning(
            "%s: draining, %d requests in flight, new connections refused; at most %.0f s",
            _name(signum),
            self.in_flight(),
            seconds,
        )
        self._schedule(self._watch)

    def in_flight(self) -> int:
        """Requests (and WebSocket sessions) whose application has not finished."""
        server = self.server
        if server is None:
            return 0
        count = 0
        for details in list(server.connections.values()):
            instance = details.get("application_instance")
            if "disconnected" not in details and instance is not None and not instance.done():
                count += 1
        return count

    def _watch(self) -> None:
        if self.in_flight() == 0:
            self._stop("every request in flight ended")
        elif time.monotonic() >= self.deadline:
            self._cut()
        else:
            self._schedule(self._watch)

    def _cut(self) -> None:
        error = ServerShuttingDown("The gateway shut down before this answer was complete.")
        cut = self.runtime().interrupt(error)
        logger.warning("drain deadline: %d answers ended with server_shutting_down", cut)
        self.grace = time.monotonic() + GRACE_SECONDS
        self._schedule(self._after_deadline)

    def _after_deadline(self) -> None:
        if self.in_flight() == 0 or time.monotonic() >= self.grace:
            self._stop("deadline")
        else:
            self._schedule(self._after_deadline)

    def _stop(self, why: str) -> None:
        assert self.started is not None
        logger.warning("drained (%s) in %.2f s: stopping", why, time.monotonic() - self.started)
        if self.reactor.running:
            self.reactor.stop()

    def _schedule(self, step: Callable[[], None]) -> None:
        self.reactor.callLater(POLL_SECONDS, step)


def _name(signum: int) -> str:
    return signal.Signals(signum).name
