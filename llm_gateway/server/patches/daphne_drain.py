"""What the drain (``llm_gateway.server.drain``) needs of daphne and Twisted: the listening
ports as daphne opens them (to close them at once), daphne's connections (to count the
requests in flight), and every connection closed after its current answer while draining
(Twisted's ``checkPersistence``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .guard import require_assigned, require_attributes, require_method, require_version

MARK = "_llm_gateway_drain"


def check() -> None:
    require_version("daphne")
    require_version("Twisted")
    from daphne.server import Server
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor
    from twisted.web.http import HTTPChannel

    # The drain's signal handlers and the runtime's shutdown run on the reactor's loop.
    require_assigned(AsyncioSelectorReactor, "__init__", "_asyncioEventloop")
    require_method(Server, "listen_success", "self", "port")
    require_assigned(Server, "run", "connections")
    require_method(HTTPChannel, "checkPersistence", "self", "request", "version")
    require_attributes(HTTPChannel, "persistent")


def install(on_listen: Callable[[Any, Any], None], draining: Callable[[], bool]) -> None:
    """``on_listen(server, port)`` as daphne opens each port; while ``draining()``, every
    answer says ``Connection: close`` and its connection closes after it."""
    from daphne.server import Server
    from twisted.web import http

    if getattr(Server, MARK, False):
        return
    listen_success = Server.listen_success

    @functools.wraps(listen_success)
    def recording(self: Any, port: Any) -> None:
        on_listen(self, port)
        listen_success(self, port)

    Server.listen_success = recording
    check_persistence = http.HTTPChannel.checkPersistence

    @functools.wraps(check_persistence)
    def persistence(self: Any, request: Any, version: bytes) -> bool:
        if draining():
            request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
            return False
        return bool(check_persistence(self, request, version))

    http.HTTPChannel.checkPersistence = persistence  # type: ignore[method-assign]
    setattr(Server, MARK, True)
