"""Engine liveness: a background probe per replica and process, as vLLM's watchdog watches its
engine.

The probe is skipped while the replica has requests in flight or finished one since the last
look (its ``in_flight`` and ``finished`` counts, kept by the pool's leases): a busy engine is
not probed at all, and some engines (llama-cpp-python's server) interrupt a running
generation when any other request arrives.

After ``WATCHDOG_FAILURES`` failed probes in a row the engine is dead: /health answers 503
and relay requests fail fast with 503 instead of each waiting for a connect timeout. The
first good probe makes it alive again. With ``EXIT_ON_ENGINE_DEATH`` the process stops itself
(SIGTERM, so the server shuts down cleanly), as vLLM does unless told to stay alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

from ..conf import conf
from ..errors import GatewayError


class Probed(Protocol):
    """What the watchdog needs of its replica (``client.Upstream``; named here so that this
    module does not import the client that holds it)."""

    name: str
    url: str
    models: set[str]
    configured_models: frozenset[str] | None  # given in the settings: nothing to discover
    in_flight: int
    finished: int

    @property
    def origin(self) -> str: ...

    def auth_headers(self) -> list[tuple[str, str]]: ...

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: aiohttp.ClientTimeout | None = ...,
        probe: bool = ...,
    ) -> Any: ...


logger = logging.getLogger(__name__)
DISCOVERY_SECONDS = 60.0
# The gateway's own requests say so: an engine's logs (and the tests) tell them from clients'.
PROBE_AGENT = ("User-Agent", "llm-gateway-watchdog")


@dataclass(slots=True)
class EngineState:
    state: str = "unknown"  # unknown | alive | dead
    reason: str = ""
    failures: int = 0
    checked_at: float | None = None  # wall clock


class Watchdog:
    def __init__(self, upstream: Probed) -> None:
        self.upstream = upstream
        self.status = EngineState()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._use_models_path = False
        self._discover_at = 0.0  # monotonic time of the next /models look

    @property
    def dead(self) -> bool:
        return self.status.state == "dead"

    def ensure_started(self) -> None:
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            return
        self._wake = asyncio.Event()
        # A context of its own: not the request's that happened to start it (its log lines
        # would carry that request's id).
        self._task = asyncio.get_running_loop().create_task(
            self._run(), context=contextvars.Context()
        )

    def poke(self) -> None:
        """Probe now (a relay request could not connect)."""
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        seen = -1
        while True:
            poked = self._wake.is_set()
            self._wake.clear()
            upstream = self.upstream
            # Traffic is the proof of life; a probe never lands in the middle of a generation.
            idle = upstream.in_flight == 0
            quiet = upstream.finished == seen
            if poked or (idle and (quiet or self.status.state != "alive")):
                await self.probe_once()
            seen = upstream.finished
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), conf.WATCHDOG_INTERVAL)

    def _probe_urls(self) -> list[str]:
        origin = self.upstream.origin
        if conf.HEALTH_PATH:
            return [origin + "/" + conf.HEALTH_PATH.lstrip("/")]
        models = self.upstream.url + "/models"
        return [models] if self._use_models_path else [origin + "/health", models]

    async def probe_once(self) -> None:
        reason = ""
        try:
            reason = await self._probe()
        except GatewayError as exc:
            reason = exc.message
        except Exception as exc:  # a probe must never kill the watchdog
            reason = f"health probe failed: {type(exc).__name__}"
        self._record(reason)
        now = time.monotonic()
        if (
            not reason
            and self.upstream.configured_models is None
            and self.upstream.in_flight == 0
            and now >= self._discover_at
        ):
            self._discover_at = now + DISCOVERY_SECONDS
            await self._discover()

    async def _discover(self) -> None:
        """What the replica serves, from its ``/models`` (labels the metrics by model)."""
        timeout = aiohttp.ClientTimeout(total=max(0.5, min(conf.WATCHDOG_INTERVAL, 10.0)))
        try:
            answer = await self.upstream.send(
                "GET",
                self.upstream.url + "/models",
                headers=[*self.upstream.auth_headers(), PROBE_AGENT],
                body=None,
                timeout=timeout,
                probe=True,
            )
            try:
                listing = orjson.loads(await answer.read()) if answer.status == 200 else None
            finally:
                answer.release()
        except (GatewayError, orjson.JSONDecodeError):
            return
        data = listing.get("data") if isinstance(listing, dict) else None
        if isinstance(data, list):
            found = {m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)}
            self.upstream.models = found

    async def _probe(self) -> str:
        """'' when the engine answered well, else why not."""
        timeout = aiohttp.ClientTimeout(total=max(0.5, min(conf.WATCHDOG_INTERVAL, 10.0)))
        reason = "no probe"
        for url in self._probe_urls():
            answer = await self.upstream.send(
                "GET",
                url,
                headers=[*self.upstream.auth_headers(), PROBE_AGENT],
                body=None,
                timeout=timeout,
                probe=True,
            )
            try:
                await answer.read()
            finally:
                answer.release()
            if answer.status == 404 and not conf.HEALTH_PATH and url.endswith("/health"):
                self._use_models_path = True  # llama.cpp's server has no /health
                continue
            if answer.status < 500:
                return ""
            reason = f"health probe answered HTTP {answer.status}"
        return reason

    def _record(self, reason: str) -> None:
        status = self.status
        status.checked_at = time.time()
        if not reason:
            if status.state == "dead":
                logger.warning("engine %s is alive again", self.upstream.name)
            status.state, status.reason, status.failures = "alive", "", 0
            return
        status.failures += 1
        status.reason = reason
        if status.failures >= conf.WATCHDOG_FAILURES and status.state != "dead":
            status.state = "dead"
            logger.error(
                "engine %s declared dead after %d failed probes: %s",
                self.upstream.name,
                status.failures,
                reason,
            )
            if conf.EXIT_ON_ENGINE_DEATH:
                logger.error("LLM_GATEWAY_EXIT_ON_ENGINE_DEATH is set: stopping this process")
                os.kill(os.getpid(), signal.SIGTERM)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    def reset(self) -> None:
        self.status = EngineState()
        self._use_models_path = False
