"""daphne's reaper of finished connections, kept alive.

daphne's ``Server.application_checker`` runs every second: it removes the connections whose
application is done and whose client is gone, and reschedules itself at its end. When an
application raised and its client was still there, it calls the request's
``handle_exception``, which writes a 500 page; that raises if the response had already
started (``ValueError``) or the socket cannot be written. The raise escapes the checker before
it reschedules, and from then on no connection is ever removed: memory and descriptors grow
for the life of the process. Issue 17 found it behind the uvloop leak
(``llm_gateway.uvloop_poll_errors``); any application error after a response's first byte
would do the same.

daphne is patched: an error too late for an error page aborts
the connection (the client sees a broken answer, as from any proxy, and the connection is
reaped), and a checker that raises anyway is logged and rescheduled.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, cast

from .guard import require_assigned, require_attributes, require_method, require_version

logger = logging.getLogger(__name__)
MARK = "_llm_gateway_reaper"


def check() -> None:
    require_version("daphne")
    require_version("Twisted")
    from daphne.http_protocol import WebRequest
    from daphne.server import Server
    from twisted.web.http import Request

    require_method(WebRequest, "handle_exception", "self", "exception")
    require_method(Server, "application_checker", "self")
    require_assigned(WebRequest, "__init__", "_response_started")
    require_assigned(Request, "__init__", "channel")
    require_attributes(Request, "finished")
    # The checker reschedules itself at its end: the patch reschedules it when it raised.
    require_assigned(Server, "application_checker", "callLater", "application_checker")
    require_attributes(WebRequest, "handle_exception")


def install() -> None:
    from daphne.http_protocol import WebRequest
    from daphne.server import Server

    if getattr(Server, MARK, False):
        return
    handle_exception = WebRequest.handle_exception
    application_checker = Server.application_checker

    @functools.wraps(handle_exception)
    def handling(self: Any, exception: BaseException) -> None:
        if not self._response_started and not self.finished and self.channel is not None:
            try:
                handle_exception(self, exception)
                return
            except Exception as exc:  # the socket cannot take the error page either
                logger.warning("could not send the error page: %r", exc)
        abort(self)

    @functools.wraps(application_checker)
    def checking(self: Any) -> None:
        try:
            application_checker(self)
        except Exception:
            logger.exception("daphne's application checker failed; it runs again in 1 s")
            from twisted.internet import reactor

            cast(Any, reactor).callLater(1, self.application_checker)

    WebRequest.handle_exception = handling
    Server.application_checker = checking
    setattr(Server, MARK, True)


def abort(request: Any) -> None:
    channel = request.channel
    transport = getattr(channel, "transport", None)
    if transport is not None:
        transport.abortConnection()
