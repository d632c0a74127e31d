"""Engine liveness: a background probe per replica and process, as vLLM's watchdog watches its
engine.

The liveness probe is skipped while the replica has requests in flight or finished one since
the last look (its ``in_flight`` and ``finished`` counts, kept by the pool's leases): a busy
engine is not probed for liveness, and some engines (llama-cpp-python's server) interrupt a
running generation when any other request arrives. Model discovery (``/v1/models``, cheap)
runs at start and every ``discovery_seconds`` busy or not, so a process under steady load
still labels its requests by model; only a replica known to serve one request at a time is
left to its idle moments. The engine's tokenizer endpoint is found once, while idle.

After ``WATCHDOG_FAILURES`` failed probes in a row the engine is dead: /health answers 503
and relay requests fail fast with 503 instead of each waiting for a connect timeout. The
first good probe makes it alive again. Whoever built the replica is told of a death
(``on_dead``): the runtime may then stop the process (``LLM_GATEWAY_EXIT_ON_ENGINE_DEATH``),
as vLLM does unless told to stay alive; this module never decides that itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import orjson

from ..errors import GatewayError
from .background import Background
from .options import WatchdogOptions
from .tokenizer import SERIALIZED, Replica, Tokenizer


class Probed(Replica, Protocol):
    """What the watchdog needs of its replica (``client.Upstream``; named here so that this
    module does not import the client that holds it): the tokenizer's needs, and more."""

    name: str
    url: str
    models: set[str]
    configured_models: frozenset[str] | None  # given in the settings: nothing to discover
    finished: int
    tokenizer: Tokenizer
    engine_kind: str  # found from its /models listing's owned_by (for traces)


logger = logging.getLogger(__name__)
# The gateway's own requests say so: an engine's logs (and the tests) tell them from clients'.
PROBE_AGENT = ("User-Agent", "llm-gateway-watchdog")
# A model's ``owned_by`` in an engine's /models listing: the engine it names (for traces).
ENGINE_OWNERS = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp"}


@dataclass(slots=True)
class EngineState:
    state: str = "unknown"  # unknown | alive | dead
    reason: str = ""
    failures: int = 0
    checked_at: float | None = None  # wall clock


class Watchdog:
    def __init__(
        self,
        upstream: Probed,
        options: WatchdogOptions | None = None,
        on_dead: Callable[[str], None] | None = None,
    ) -> None:
        self.upstream = upstream
        self.options = options or WatchdogOptions()
        self.on_dead = on_dead
        self.status = EngineState()
        self._loop = Background(self._run)
        self._wake: asyncio.Event | None = None
        self._use_models_path = False
        self._discover_at = 0.0  # monotonic time of the next /models look
        # Set once the first /models look ended, well or not: the first requests wait for it
        # (``UpstreamPool.first_look``), so routing and labels know the models from the start.
        self.looked = asyncio.Event()

    @property
    def dead(self) -> bool:
        return self.status.state == "dead"

    def ensure_started(self) -> None:
        if self._loop.running():
            return
        self._wake = asyncio.Event()
        self.looked = asyncio.Event()
        self._loop.start()

    def poke(self) -> None:
        """Probe now (a relay request could not connect)."""
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        try:
            if self.upstream.configured_models is None:
                await self._discover(self.upstream.in_flight == 0)
        finally:
            self.looked.set()
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
            if upstream.configured_models is None and time.monotonic() >= self._discover_at:
                await self._discover(idle)
            seen = upstream.finished
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.options.interval)

    def _probe_urls(self) -> list[str]:
        origin, path = self.upstream.origin, self.options.health_path
        if path:
            return [origin + "/" + path.lstrip("/")]
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

    async def _discover(self, idle: bool) -> None:
        """What the replica serves, from its ``/models`` (labels the metrics by model): at
        start and every ``discovery_seconds``, busy or not (a /models read is cheap, and a
        replica under steady load is never idle), but for an engine that serves one request
        at a time (llama-cpp-python), which is asked only while idle. Its tokenizer is looked
        for once, while idle (``tokenizer``)."""
        upstream = self.upstream
        serialized = upstream.tokenizer.kind == SERIALIZED
        if not idle and serialized:
            return
        try:
            answer = await self.upstream.send(
                "GET",
                self.upstream.url + "/models",
                headers=[*self.upstream.auth_headers(), PROBE_AGENT],
                body=None,
                timeout=self._timeout(),
                probe=True,
            )
            try:
                listing = orjson.loads(await answer.read()) if answer.status == 200 else None
            finally:
                answer.release()
        except (GatewayError, orjson.JSONDecodeError):
            return
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            return
        found = {m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)}
        upstream.models = found
        owners = {m.get("owned_by") for m in data if isinstance(m, dict)}
        upstream.engine_kind = next((ENGINE_OWNERS[o] for o in owners if o in ENGINE_OWNERS), "")
        self._discover_at = time.monotonic() + self.options.discovery_seconds  # else: next round
        if idle and not upstream.tokenizer.searched and upstream.in_flight == 0:
            headers = [*upstream.auth_headers(), PROBE_AGENT]
            await upstream.tokenizer.discover(min(found) if found else None, headers)

    async def _probe(self) -> str:
        """'' when the engine answered well, else why not."""
        timeout = self._timeout()
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
            if answer.status == 404 and not self.options.health_path and url.endswith("/health"):
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
        if status.failures >= self.options.failures and status.state != "dead":
            status.state = "dead"
            logger.error(
                "engine %s declared dead after %d failed probes: %s",
                self.upstream.name,
                status.failures,
                reason,
            )
            if self.on_dead is not None:
                self.on_dead(self.upstream.name)

    def _timeout(self) -> aiohttp.ClientTimeout:
        """A probe waits at most one interval (between 0.5 and 10 s)."""
        return aiohttp.ClientTimeout(total=max(0.5, min(self.options.interval, 10.0)))

    async def aclose(self) -> None:
        await self._loop.aclose()

    def reset(self) -> None:
        self.status = EngineState()
        self._use_models_path = False
