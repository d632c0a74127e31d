"""Whether a replica has room for one more request: its engine's own load signals, read once
an interval off the request path, and this process's requests in flight on it.

A replica is saturated when its engine's waiting requests reach ``queue_threshold``, its KV
cache use ``kv_threshold``, or this process's requests on it ``max_in_flight``. An engine's
reading is up to an interval old; between two readings this process corrects it by what it
saw: each of its requests that ended since frees room for one, each it sent since takes one.
A reading older than ``STALE_INTERVALS`` intervals (the engine stopped answering its
``/metrics`` after it had) counts as saturated: fail safe, the gateway holds the work rather
than pile it on an engine it cannot see. An engine with no ``/metrics`` at its origin
(llama-cpp-python's server answers 404) is judged by ``max_in_flight`` alone.

The reader never blocks a request: ``saturated()`` reads numbers already in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from ..errors import GatewayError
from .background import Background
from .health import PROBE_AGENT
from .signals import EngineLoad, parse_load
from .tokenizer import Replica

logger = logging.getLogger(__name__)
STALE_INTERVALS = 3
NO_METRICS_RETRY_SECONDS = 60.0  # an engine without /metrics is asked again this often


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """One replica's capacity and thresholds (``LLM_GATEWAY_UPSTREAMS``), and whether its
    engine's metrics are read at all (only while the scheduler is on)."""

    max_in_flight: int | None = None  # this process's requests on it at most (None: no cap)
    metrics_url: str = ""  # empty: /metrics at the replica's origin
    queue_threshold: float = 1.0
    kv_threshold: float = 0.9
    interval: float = 1.0
    read: bool = False  # read the engine's /metrics (LLM_GATEWAY_SCHEDULER on)


class Counted(Replica, Protocol):
    """What the reader needs of its replica (``client.Upstream``): the tokenizer's needs,
    its name and its count of requests ended."""

    name: str
    finished: int


class ReplicaLoad:
    """A replica's last engine reading and the judgement made from it."""

    def __init__(
        self,
        upstream: Counted,
        options: LoadOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.options = options or LoadOptions()
        self.clock = clock
        self.engine: EngineLoad | None = None
        # "unknown" (not read yet), "read", "none" (the engine offers no metrics), "failing"
        self.state = "unknown"
        self.read_at = clock()  # monotonic; a replica not yet read is given STALE_INTERVALS
        self._in_flight_then = 0
        self._finished_then = 0
        self._loop = Background(self._run)
        # Called after each reading (the scheduler dispatches what now fits).
        self.on_reading: Callable[[], None] | None = None

    @property
    def metrics_url(self) -> str:
        return self.options.metrics_url or self.upstream.origin + "/metrics"

    def stale(self) -> bool:
        """Read once, then not for ``STALE_INTERVALS`` intervals. A replica never read (its
        engine never answered /metrics) is left to the watchdog, not held as saturated."""
        options = self.options
        if not options.read or self.engine is None or self.state == "none":
            return False
        return self.clock() - self.read_at > STALE_INTERVALS * options.interval

    def saturated(self, reserve: int = 0) -> bool:
        """Whether one more request would queue inside the engine (or pass this process's cap
        less ``reserve`` slots: the headroom batch requests leave to the others)."""
        upstream, options = self.upstream, self.options
        cap = options.max_in_flight
        if cap is not None and upstream.in_flight >= cap - reserve:
            return True
        if not options.read:
            return False
        if self.stale():
            return True
        engine = self.engine
        if engine is None:
            return False
        over = engine.waiting - options.queue_threshold + 1  # > 0: saturated when read
        kv_full = engine.kv_usage is not None and engine.kv_usage >= options.kv_threshold
        if over <= 0 and not kv_full:
            return False
        ended = upstream.finished - self._finished_then
        sent = upstream.in_flight + upstream.finished - self._in_flight_then - self._finished_then
        return ended - sent < max(over, 1)

    def waiting(self) -> float:
        """The engine's queue as last read (0 without a reading): a replica with a long queue
        gets fewer new requests."""
        return self.engine.waiting if self.engine is not None else 0.0

    def ensure_started(self) -> None:
        if not self.options.read or self._loop.running():
            return
        self.read_at = self.clock()
        self._loop.start()

    async def _run(self) -> None:
        retry_at = 0.0
        while True:
            if self.state != "none" or self.clock() >= retry_at:
                await self.read_once()
                if self.state == "none":
                    retry_at = self.clock() + NO_METRICS_RETRY_SECONDS
            if self.on_reading is not None:
                self.on_reading()
            await asyncio.sleep(self.options.interval)

    async def read_once(self) -> None:
        """One reading of the engine's /metrics; a failure leaves the last one to age."""
        upstream = self.upstream
        in_flight, finished = upstream.in_flight, upstream.finished
        try:
            answer = await upstream.send(
                "GET",
                self.metrics_url,
                headers=[*upstream.auth_headers(), PROBE_AGENT],
                body=None,
                timeout=aiohttp.ClientTimeout(total=max(0.5, self.options.interval)),
                probe=True,
            )
            status = answer.status
            try:
                text = (await answer.read()).decode("utf-8", "replace")
            finally:
                answer.release()
        except GatewayError:
            self.state = "failing"
            return
        if status == 404 and not self.options.metrics_url:
            self._no_metrics("it has no /metrics")
            return
        if status != 200:
            self.state = "failing"
            return
        try:
            engine = parse_load(text)
        except ValueError:
            engine = None
        if engine is None:
            self._no_metrics("its /metrics names no engine load the gateway knows")
            return
        self.engine, self.state, self.read_at = engine, "read", self.clock()
        self._in_flight_then, self._finished_then = in_flight, finished

    def _no_metrics(self, why: str) -> None:
        if self.state != "none":  # debug: it says nothing wrong, and no request asked for it
            logger.debug("engine %s: %s; judged by max_in_flight alone", self.upstream.name, why)
        self.state, self.engine = "none", None

    def describe(self) -> dict[str, object]:
        """For /health: what the scheduler knows of this replica."""
        engine = self.engine
        return {
            "saturated": self.saturated(),
            "signal": self.state if self.options.read else "in_flight",
            "in_flight": self.upstream.in_flight,
            "max_in_flight": self.options.max_in_flight,
            "engine_waiting": engine.waiting if engine else None,
            "engine_running": engine.running if engine else None,
            "kv_usage": engine.kv_usage if engine else None,
            "age_seconds": round(self.clock() - self.read_at, 3) if self.state == "read" else None,
        }

    async def aclose(self) -> None:
        await self._loop.aclose()
