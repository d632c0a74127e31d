"""Every patch of daphne, Twisted, autobahn and uvloop, each in its own module with a
``check()`` (what it relies on, ``guard``) and an ``install()``:

- ``daphne_close``: WebSocket close codes and reasons carried both ways (1001, 1009, 1011);
- ``daphne_flow``: backpressure for streamed responses and WebSocket sessions;
- ``daphne_reaper``: daphne's reaper of finished connections survives a late error;
- ``daphne_drain``: what the drain needs (ports, connections, ``Connection: close``);
- ``twisted_content_type``: Twisted's Content-Type parsing memoized;
- ``uvloop_poll_errors``: a socket error's closed poll handle cleared (with uvloop only).
"""

from __future__ import annotations

from types import ModuleType

from . import (
    daphne_close,
    daphne_drain,
    daphne_flow,
    daphne_reaper,
    twisted_content_type,
    uvloop_poll_errors,
)
from .guard import TESTED, PatchRefused

# Installed in every daphne process (``daphne_drain`` too, by the server with its drain).
EVERY_PROCESS: tuple[ModuleType, ...] = (
    daphne_close,
    daphne_flow,
    daphne_reaper,
    twisted_content_type,
)
ALL: tuple[ModuleType, ...] = (*EVERY_PROCESS, daphne_drain, uvloop_poll_errors)


def problems(with_uvloop: bool) -> list[str]:
    """Why each patch that this process needs cannot be installed (empty: all can)."""
    found = []
    for patch in ALL:
        if patch is uvloop_poll_errors and not with_uvloop:
            continue
        try:
            patch.check()
        except PatchRefused as exc:
            found.append(f"{patch.__name__.rsplit('.', 1)[-1]}: {exc}")
    return found


__all__ = ["ALL", "EVERY_PROCESS", "TESTED", "PatchRefused", "problems"]
