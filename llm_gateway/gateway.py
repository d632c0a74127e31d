"""This process's relay, assembled from settings, and the one start and stop of its work.

Both faces call ``get_relay()``. Nothing starts at import: ``start()`` runs on the first
request or at ASGI lifespan start-up (each replica's watchdog, on the running loop), and
``shutdown()`` stops everything at ASGI lifespan shutdown, or before daphne's reactor stops.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from .conf import conf
from .core import hooks
from .core.relay import Relay
from .keystore import key_store
from .limits.policy import LimitsPolicy
from .observe import metrics, request_log
from .observe.response_log import ResponseLog
from .upstream.client import Upstream
from .upstream.pool import UpstreamPool

logger = logging.getLogger(__name__)

_relay: Relay | None = None
_built_from: tuple[object, ...] = ()
_retired: list[Relay] = []  # replaced after a settings change: closed at shutdown


def _settings_key() -> tuple[object, ...]:
    return (
        tuple(conf.UPSTREAMS),
        conf.ROUTING,
        conf.AFFINITY_LOAD_FACTOR,
        tuple(conf.POLICIES),
        tuple(conf.OBSERVERS),
    )


def build_relay() -> Relay:
    """A relay from the settings: the pool, the built-in policy (limits) and observers, then
    the project's."""
    upstreams = [
        Upstream(
            spec.url,
            spec.api_key,
            spec.name or None,
            models=spec.models,
            weight=spec.weight,
            connect_timeout=spec.connect_timeout,
            read_timeout=spec.read_timeout,
        )
        for spec in conf.UPSTREAMS
    ]
    pool = UpstreamPool(upstreams, conf.ROUTING, conf.AFFINITY_LOAD_FACTOR)
    policies: list[hooks.Policy] = [LimitsPolicy()]
    policies += hooks.load(conf.POLICIES)  # type: ignore[arg-type]
    observers: list[hooks.Observer] = [
        ResponseLog(),
        request_log.RequestLogObserver(),
        metrics.Metrics(pool),
    ]
    observers += hooks.load(conf.OBSERVERS)  # type: ignore[arg-type]
    return Relay(pool, policies, observers)


def get_relay() -> Relay:
    global _relay, _built_from
    key = _settings_key()
    if _relay is None or key != _built_from:
        if _relay is not None:
            _retired.append(_relay)
        _relay, _built_from = build_relay(), key
    return _relay


_started_on: asyncio.AbstractEventLoop | None = None


def start() -> None:
    """Start the background work on the running loop (again after a loop change), and, under
    daphne (which has no ASGI lifespan), have its reactor run ``shutdown()`` before it stops.
    Both faces call it on every request: after the first, it is one comparison."""
    global _started_on
    loop = asyncio.get_running_loop()
    if loop is _started_on:
        return
    _started_on = loop
    get_relay().pool.start()
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import defer
        from twisted.internet import reactor as twisted_reactor

        reactor: Any = twisted_reactor
        reactor.addSystemEventTrigger(
            "before", "shutdown", lambda: defer.Deferred.fromFuture(loop.create_task(shutdown()))
        )


async def shutdown() -> None:
    """Stop the background tasks and close the upstream connections of this process."""
    relays = [*_retired, *([_relay] if _relay is not None else [])]
    _retired.clear()
    global _started_on
    _started_on = None
    for relay in relays:
        await relay.pool.aclose()
        for policy in relay.policies:
            await policy.aclose()
    await key_store.aclose()
    await request_log.writer.aclose()
    logger.info(
        "gateway stopped: watchdogs, key store and upstream sessions closed, "
        "request log written (%d rows, %d dropped)",
        request_log.writer.written,
        request_log.writer.dropped,
    )


def refuse_bad_settings() -> None:
    """Raise ImproperlyConfigured if the gateway's system checks find an error: servers do
    not run checks (daphne, uvicorn), so the launcher and ``gateway_application()`` do,
    and a value that cannot be read stops the start-up instead of failing each request."""
    from django.core.checks import ERROR, run_checks
    from django.core.exceptions import ImproperlyConfigured

    errors = [
        message
        for message in run_checks()
        if message.level >= ERROR and (message.id or "").startswith("llm_gateway.")
    ]
    if errors:
        raise ImproperlyConfigured("\n".join(str(error) for error in errors))


def reset() -> None:
    """Forget the relay (tests): the next call builds a new one from the settings."""
    global _relay, _built_from, _started_on
    _relay, _built_from, _started_on = None, (), None
    _retired.clear()
