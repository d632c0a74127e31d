"""The replicas the core sends requests to, and the lease a request holds on one of them.

A pool of one today (``LLM_GATEWAY_UPSTREAM_URL``); the lease keeps each replica's in-flight
count, which its watchdog reads (a busy replica is never probed) and balancing will read.
"""

from __future__ import annotations

from ..errors import EngineDeadError
from .client import Upstream


class Lease:
    """One request's hold on a replica: taken before sending, released once it ended."""

    __slots__ = ("upstream", "_held")

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._held = True
        upstream.in_flight += 1

    def release(self) -> None:
        if self._held:
            self._held = False
            self.upstream.in_flight -= 1
            self.upstream.finished += 1


class UpstreamPool:
    def __init__(self, upstreams: list[Upstream]) -> None:
        self.upstreams = upstreams

    def acquire(self, model: str | None) -> Lease:
        """A lease on a replica that can serve ``model``, or the 503 that says why not."""
        if not self.upstreams:
            raise EngineDeadError(
                "No upstream engine is configured (LLM_GATEWAY_UPSTREAM_URL).",
                code="engine_not_configured",
            )
        upstream = self.upstreams[0]
        if upstream.health.dead:
            raise EngineDeadError(f"The engine is unavailable: {upstream.health.status.reason}.")
        return Lease(upstream)

    def start(self) -> None:
        """Start each replica's watchdog on the running loop (again after a loop change)."""
        for upstream in self.upstreams:
            upstream.health.ensure_started()

    async def aclose(self) -> None:
        for upstream in self.upstreams:
            await upstream.aclose()
