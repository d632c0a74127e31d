"""The replicas the core sends requests to, and the lease a request holds on one of them.

``acquire`` picks among the replicas that serve the request's model and are available (not
declared dead by their watchdog, not ejected by their breaker, not asking to be left alone
with ``Retry-After``), by the routing policy of ``balance``. The lease keeps each replica's
in-flight count (its watchdog never probes a busy replica; balancing reads it) and reports
how the request went to the replica's breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from typing import cast

from ..errors import EngineDeadError, ModelNotFound
from . import balance
from .client import Upstream
from .options import PoolOptions


class Saturated(Exception):
    """Every available replica of the model is saturated: the request waits (``schedule``)."""

    def __init__(self, model: str | None) -> None:
        super().__init__(model)
        self.model = model


class Lease:
    """One request's hold on a replica: taken before sending, released once it ended."""

    __slots__ = ("upstream", "_held", "_breaker")

    def __init__(self, upstream: Upstream, judged: bool = True) -> None:
        self.upstream = upstream
        self._held = True
        # A pool of one has no replica to turn to: nothing is ejected, nothing to judge.
        self._breaker = upstream.breaker if judged else None
        upstream.in_flight += 1

    def answered(self, status: int) -> None:
        """The replica's status line: a 5xx counts against it, anything else for it."""
        if self._breaker is not None:
            if status >= 500:
                self._breaker.failed()
            else:
                self._breaker.succeeded()

    def release(self, failed: bool = False) -> None:
        if self._held:
            self._held = False
            upstream = self.upstream
            upstream.in_flight -= 1
            upstream.finished += 1
            if failed and self._breaker is not None:
                self._breaker.failed()
            if upstream.on_room is not None:
                upstream.on_room()


# The longest a request arriving as the process starts waits for the replicas' models.
FIRST_LOOK_SECONDS = 2.0


class UpstreamPool:
    def __init__(self, upstreams: list[Upstream], options: PoolOptions | None = None) -> None:
        self.upstreams = upstreams
        self.looked = False  # every replica's first /models look has ended (or was waited for)
        options = options or PoolOptions()
        self.routing = options.routing
        self.load_factor = options.load_factor
        self._round_robin = balance.RoundRobin()
        self._ring = balance.Ring(upstreams) if upstreams else None
        self.read_engines = any(u.load.options.read for u in upstreams)

    def acquire(
        self,
        model: str | None,
        affinity: bytes | None = None,
        tried: Collection[Upstream] = (),
        with_room: bool = False,
        reserve: int = 0,
    ) -> Lease:
        """A lease on a replica that can serve ``model``, or the error that says why not:
        404 for a model no replica serves, 503 when none of those that do is available.
        ``with_room``: only an unsaturated one (``load``; with ``reserve`` slots of its
        ``max_in_flight`` left free), else ``Saturated``."""
        upstreams = self.upstreams
        if not upstreams:
            raise EngineDeadError(
                "No upstream engine is configured (LLM_GATEWAY_UPSTREAM_URL).",
                code="engine_not_configured",
            )
        if len(upstreams) == 1:  # a pool of one: nothing to choose
            upstream = upstreams[0]
            if upstream.health.dead:
                raise EngineDeadError(
                    f"The engine is unavailable: {upstream.health.status.reason}."
                )
            if tried:
                raise EngineDeadError("The engine failed and there is no other replica.")
            if with_room and upstream.load.saturated(reserve):
                raise Saturated(model)
            return Lease(upstream, judged=False)
        serving = [u for u in upstreams if u.serves(model)]
        candidates = [
            u for u in serving if u not in tried and not u.health.dead and u.breaker.available()
        ]
        if not candidates:
            raise self._none_available(model, serving)
        if with_room:
            candidates = [u for u in candidates if not u.load.saturated(reserve)]
            if not candidates:
                raise Saturated(model)
        upstream = self._choose(candidates, affinity)
        upstream.breaker.picked()
        return Lease(upstream)

    def _choose(self, candidates: list[Upstream], affinity: bytes | None) -> Upstream:
        if self.routing == "round_robin":
            return self._round_robin(candidates)  # type: ignore[return-value]
        if self.routing == "prefix_affinity" and affinity is not None and self._ring is not None:
            key = balance.key_hash(affinity)
            return self._ring.pick(key, candidates, self.load_factor)  # type: ignore[return-value]
        if self.read_engines:
            return balance.least_outstanding(candidates, _engine_queue)  # type: ignore
        return balance.least_outstanding(candidates)  # type: ignore[return-value]

    def _none_available(self, model: str | None, serving: list[Upstream]) -> Exception:
        if not serving:
            return ModelNotFound(model)
        reasons = "; ".join(f"{u.name}: {_why_not(u)}" for u in serving)
        which = f" of model `{model}`" if model else ""
        return EngineDeadError(f"No replica{which} is available ({reasons}).")

    def alive(self) -> list[Upstream]:
        """The replicas neither dead nor ejected (for /health and /ready)."""
        return [u for u in self.upstreams if not u.health.dead and u.breaker.state != "open"]

    def start(self) -> None:
        """Start each replica's watchdog on the running loop (again after a loop change)."""
        self.looked = False
        for upstream in self.upstreams:
            upstream.health.ensure_started()
            upstream.load.ensure_started()

    async def first_look(self, timeout: float = FIRST_LOOK_SECONDS) -> None:
        """Wait (at most ``timeout``) for each replica's first /models look: the requests that
        arrive as the process starts are routed and labelled by what the replicas serve. After
        that, ``looked`` is True and nobody waits."""
        waiting = [u.health.looked.wait() for u in self.upstreams if not u.health.looked.is_set()]
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waiting), timeout)
        self.looked = True

    async def aclose(self) -> None:
        for upstream in self.upstreams:
            await upstream.aclose()


def _engine_queue(upstream: balance.Replica) -> float:
    return cast(Upstream, upstream).load.waiting()


def _why_not(upstream: Upstream) -> str:
    if upstream.health.dead:
        return upstream.health.status.reason or "dead"
    left = upstream.breaker.ejected_for()
    if left is not None:
        return f"ejected after {upstream.breaker.failures} failures, {left:.1f} s left"
    if upstream.breaker.clock() < upstream.breaker.throttled_until:
        return "asked to wait (Retry-After)"
    return "already tried"
