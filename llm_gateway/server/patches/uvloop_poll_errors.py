"""A socket error that uvloop leaves behind, cleared so that Twisted meets it.

daphne's Twisted reactor watches its sockets through the event loop's ``add_reader`` and
``add_writer``. On a socket error (a client's reset: ``POLLERR``), uvloop runs the
descriptor's callbacks once and closes its poll handle, but keeps that closed handle under
the descriptor's number (MagicStack/uvloop#552). When the callback did not meet the error
(a read that still found data, or no callback for that direction at the time), the next
``add_writer`` or ``add_reader`` for that socket raises "unable to perform operation on
<UVPoll closed=True>; the handler is closed" instead of watching it. Issue 17's thousand
random disconnects hit it in the Django face: the raise came inside daphne's
``application_checker``, which then stopped reaping every later connection (15 MB and a
dozen descriptors more per thousand requests, without end).

With uvloop as the event loop, Twisted's asyncio reactor is patched: on that error, both
directions of the descriptor are removed from the loop, which drops the closed handle, and
the socket is watched again with a fresh one; its next event meets the error, and Twisted
loses the connection as it should.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .guard import require_assigned, require_method, require_version

MARK = "_llm_gateway_polls"


def is_closed_handle(exc: RuntimeError) -> bool:
    # uvloop's message for a closed handle (its UVHandle._ensure_alive), in the versions of
    # guard.TESTED: a newer uvloop may word it otherwise, hence the version check.
    return "the handler is closed" in str(exc)


def check() -> None:
    require_version("uvloop")
    require_version("Twisted")
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    require_method(AsyncioSelectorReactor, "addReader", "self", "reader")
    require_method(AsyncioSelectorReactor, "addWriter", "self", "writer")
    require_assigned(
        AsyncioSelectorReactor, "__init__", "_readers", "_writers", "_asyncioEventloop"
    )


def install() -> None:
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    if getattr(AsyncioSelectorReactor, MARK, False):
        return
    add_reader, add_writer = AsyncioSelectorReactor.addReader, AsyncioSelectorReactor.addWriter

    def rewatch(reactor: Any, selectable: Any) -> None:
        """Forget the descriptor's closed handle; watch what Twisted was watching, anew."""
        fd = selectable.fileno()
        reading = reactor._readers.pop(selectable, None) is not None
        writing = reactor._writers.pop(selectable, None) is not None
        loop = reactor._asyncioEventloop
        loop.remove_reader(fd)
        loop.remove_writer(fd)
        if reading:
            add_reader(reactor, selectable)
        if writing:
            add_writer(reactor, selectable)

    def through_closed_handles(add: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        @functools.wraps(add)
        def adding(self: Any, selectable: Any) -> None:
            try:
                add(self, selectable)
            except RuntimeError as exc:
                if not is_closed_handle(exc):
                    raise
                rewatch(self, selectable)
                add(self, selectable)

        return adding

    # setattr: the class is typed, and mypy refuses assignments to its methods.
    setattr(AsyncioSelectorReactor, "addReader", through_closed_handles(add_reader))  # noqa: B010
    setattr(AsyncioSelectorReactor, "addWriter", through_closed_handles(add_writer))  # noqa: B010
    setattr(AsyncioSelectorReactor, MARK, True)
