"""The server: daphne, made fit to run the gateway, under the launcher or the plain CLI.

``apply()`` runs once in every daphne process: the app calls it when daphne loads it (so
``daphne project.asgi:application`` gets it), and the launcher (``python -m
llm_gateway.run``) before that. It checks every patch's target first (``patches.guard``) and
refuses to start with the reason if one changed; then it installs the patches, the drain
(``drain``), the runtime's shutdown before the reactor stops, and the start-up heap's
freeze. The launcher adds what a plain CLI cannot: uvloop, an accept backlog of 2048, and
``--workers`` (``launcher``); under plain daphne one line at start says so.

Signals, patched classes and listening ports belong to the process, not to a runtime: the
process's ``Drain`` is the one value kept here (``process_drain()``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from . import patches
from .drain import Drain
from .patches import PatchRefused

logger = logging.getLogger(__name__)

_drain: Drain | None = None
_applied = False
LAUNCHER_ONLY = (
    "uvloop, an accept backlog of 2048 and --workers come with "
    "python -m llm_gateway.run (the same arguments as daphne)"
)


def process_drain() -> Drain:
    """This process's drain (made on first use; nothing of daphne is imported for it)."""
    global _drain
    if _drain is None:
        _drain = Drain(_runtime, _drain_seconds)
    return _drain


def apply(launcher: bool = False) -> Drain:
    """Check and install every patch, the drain and the shutdown, once per process.

    Raises ``PatchRefused`` (with every reason) if a patch's target changed: the process
    must not serve without its drain, backpressure or reaper fix.
    """
    global _applied
    drain = process_drain()
    if _applied:
        return drain
    from twisted.internet import reactor as installed

    reactor: Any = installed
    with_uvloop = _runs_on_uvloop(reactor)
    found = patches.problems(with_uvloop)
    if found:
        raise PatchRefused(
            "llm_gateway: not starting, the server's patches do not fit what is installed:\n"
            + "\n".join(found)
        )
    for patch in patches.EVERY_PROCESS:
        if patch is patches.daphne_flow:
            patch.install(_send_timeout)
        else:
            patch.install()
    patches.daphne_drain.install(drain.listened, lambda: drain.draining)
    if with_uvloop:
        patches.uvloop_poll_errors.install()
    drain.install(reactor)
    reactor.addSystemEventTrigger("before", "shutdown", _stop_runtimes)
    reactor.callWhenRunning(_freeze_startup_heap)
    _applied = True
    if not launcher:
        logger.info(
            "served by plain daphne: drain, backpressure and the patches apply; %s", LAUNCHER_ONLY
        )
    return drain


def _runs_on_uvloop(reactor: Any) -> bool:
    uvloop = sys.modules.get("uvloop")
    loop = getattr(reactor, "_asyncioEventloop", None)
    return uvloop is not None and isinstance(loop, uvloop.Loop)


def _stop_runtimes() -> Any:
    """Before the reactor stops: every runtime of this process stops its work (a Deferred
    the reactor waits for)."""
    from django.apps import apps
    from twisted.internet import defer

    config: Any = apps.get_app_config("llm_gateway")
    return defer.Deferred.fromFuture(asyncio.ensure_future(config.aclose()))


def _freeze_startup_heap() -> None:
    from ..conf import conf
    from .tuning import freeze_startup_heap

    freeze_startup_heap(conf.GC_FREEZE)


def _runtime() -> Any:
    from ..runtime import get_runtime

    return get_runtime()


def _send_timeout() -> float:
    from ..conf import conf

    return conf.SEND_TIMEOUT


def _drain_seconds() -> float:
    from ..conf import conf

    return conf.DRAIN_SECONDS


__all__ = ["Drain", "PatchRefused", "apply", "process_drain"]
