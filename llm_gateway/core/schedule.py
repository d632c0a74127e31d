"""The gateway queue: when every replica of a model is saturated, requests wait here instead
of piling onto the engines, and the gateway chooses the order.

A request whose model has a replica with room (``upstream.load``) and nobody waiting before
it goes at once: a dictionary lookup and the replicas' saturation checks. Otherwise it waits.
Each time a replica has room again (a request on it ended, or its engine's load was read),
the waiting request dispatched next is chosen:

1. by class, highest first (``interactive`` > ``default`` > ``batch``), a request that has
   waited ``aging`` seconds counting one class higher (so batch work is delayed, never
   starved);
2. within the class, the tenant with the smallest virtual token counter (``fairness``);
3. within the tenant, the oldest.

The lease on the replica is taken as the request is chosen, so no later arrival takes its
place. A client that leaves while waiting is removed (the engine never sees it); past
``queue_max`` waiting requests of a model a request is refused ``queue_full``, after
``queue_timeout`` seconds ``queue_timeout`` (503 with ``Retry-After``); the drain answers
every waiting request ``server_shutting_down``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import GatewayError, ServerShuttingDown
from ..upstream.pool import Lease, Saturated, UpstreamPool
from .fairness import Counters, MemoryCounters
from .priority import CLASSES, Tenant

BATCH_RANK = CLASSES.index("batch")


@dataclass(frozen=True, slots=True)
class ScheduleOptions:
    enabled: bool = False  # LLM_GATEWAY_SCHEDULER
    queue_max: int = 1000  # waiting requests per model
    queue_timeout: float = 60.0  # seconds a request may wait
    aging: float = 30.0  # seconds of waiting that lift a request one class
    input_weight: float = 1.0
    output_weight: float = 2.0
    fairness_by: str = "owner"  # owner | key | team
    # Slots of each replica's max_in_flight that batch requests leave free for the others.
    batch_headroom: int = 0


class QueueFull(GatewayError):
    status = 503
    type = "server_error"
    code = "queue_full"


class QueueTimeout(GatewayError):
    status = 503
    type = "server_error"
    code = "queue_timeout"


class Watcher(Protocol):
    """Who is told of the queue (the metrics): its depth by class, each wait, each refusal."""

    def queued(self, model: str, rank: int, change: int) -> None: ...

    def waited(self, model: str, rank: int, seconds: float) -> None: ...

    def rejected(self, model: str, code: str) -> None: ...


class Waiter:
    __slots__ = ("model", "tenant", "rank", "since", "future", "affinity", "tokens")

    def __init__(
        self,
        model: str,
        tenant: Tenant,
        rank: int,
        since: float,
        future: asyncio.Future[Lease],
        affinity: bytes | None,
        tokens: float,
    ) -> None:
        self.model = model
        self.tenant = tenant
        self.rank = rank
        self.since = since
        self.future = future
        self.affinity = affinity
        self.tokens = tokens  # the prompt's estimate: charged at dispatch

    def effective_rank(self, now: float, aging: float) -> int:
        if aging <= 0:
            return self.rank
        return max(0, self.rank - math.floor((now - self.since) / aging))


class Scheduler:
    def __init__(
        self,
        pool: UpstreamPool,
        options: ScheduleOptions | None = None,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.monotonic,
        watcher: Watcher | None = None,
    ) -> None:
        self.pool = pool
        self.options = options or ScheduleOptions()
        self.counters: Counters = counters or MemoryCounters()
        self.clock = clock
        self.watcher = watcher
        self.queues: dict[str, list[Waiter]] = {}  # per model, in arrival order
        self.closed = False
        self._last_served: str | None = None
        if self.options.enabled:  # else nothing calls it: off costs nothing
            for upstream in pool.upstreams:
                upstream.on_room = self.pump
                upstream.load.on_reading = self.pump

    # --- a request's turn -----------------------------------------------------------------
    async def turn(
        self,
        model: str | None,
        tenant: Tenant,
        rank: int,
        affinity: bytes | None = None,
        tokens: float = 0.0,
    ) -> tuple[Lease, float]:
        """A lease on a replica with room for ``model``, and the seconds waited for it."""
        key = model or ""
        if not self.queues.get(key):
            try:
                lease = self.pool.acquire(
                    model, affinity, with_room=True, reserve=self._reserve(rank)
                )
            except Saturated:
                pass
            else:
                self._charge(tenant, tokens * self.options.input_weight)
                return lease, 0.0
        if self.closed:
            raise _shutting_down()
        queue = self.queues.setdefault(key, [])
        if len(queue) >= self.options.queue_max:
            self._rejected(key, "queue_full")
            raise QueueFull(
                f"Too many requests are waiting for model `{key}` "
                f"({self.options.queue_max}); try again shortly.",
                headers=[(b"retry-after", b"1")],
            )
        loop = asyncio.get_running_loop()
        waiter = Waiter(key, tenant, rank, self.clock(), loop.create_future(), affinity, tokens)
        self._lift(tenant.name)
        queue.append(waiter)
        self._queued(waiter, +1)
        # It may fit where those before it do not (a higher class, or the batch headroom).
        self.pump()
        timer = loop.call_later(self.options.queue_timeout, self._expire, waiter)
        try:
            lease = await waiter.future
        except asyncio.CancelledError:
            # The client left (or the request was cancelled) while waiting.
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().release()  # chosen just as it left: the slot goes back
            else:
                self._remove(waiter)
            raise
        finally:
            timer.cancel()
        waited = self.clock() - waiter.since
        if self.watcher is not None:
            self.watcher.waited(key, waiter.rank, waited)
        return lease, waited

    def finished(self, tenant: Tenant, output_tokens: int) -> None:
        """A dispatched request ended: its output tokens count for its tenant."""
        if output_tokens:
            self._charge(tenant, output_tokens * self.options.output_weight)

    # --- dispatching the waiting ----------------------------------------------------------
    def pump(self) -> None:
        """Dispatch the waiting requests that now fit, best first (a replica has room)."""
        for queue in self.queues.values():
            while queue:
                waiter, rank = self._next(queue)
                model = waiter.model or None
                try:
                    lease = self.pool.acquire(
                        model, waiter.affinity, with_room=True, reserve=self._reserve(rank)
                    )
                except Saturated:
                    break
                except GatewayError as exc:  # no replica serves it any more: say why
                    self._remove(waiter)
                    waiter.future.set_exception(exc)
                    continue
                self._remove(waiter)
                self._charge(waiter.tenant, waiter.tokens * self.options.input_weight)
                waiter.future.set_result(lease)

    def _reserve(self, rank: int) -> int:
        return self.options.batch_headroom if rank >= BATCH_RANK else 0

    def _next(self, queue: list[Waiter]) -> tuple[Waiter, int]:
        """Highest class (with aging), then the tenant with the smallest counter, then the
        oldest: one pass over the waiting requests of the model. With its class."""
        now, aging = self.clock(), self.options.aging
        value = self.counters.value
        best: Waiter | None = None
        best_key: tuple[int, float] | None = None
        seen: dict[str, float] = {}
        for waiter in queue:  # arrival order: the first of a tenant in a class wins ties
            name = waiter.tenant.name
            counter = seen.get(name)
            if counter is None:
                counter = seen[name] = value(name)
            key = (waiter.effective_rank(now, aging), counter)
            if best_key is None or key < best_key:
                best, best_key = waiter, key
        assert best is not None and best_key is not None
        return best, best_key[0]

    # --- the rest -------------------------------------------------------------------------
    def close(self) -> None:
        """The drain: every waiting request is answered ``server_shutting_down``."""
        self.closed = True
        for queue in self.queues.values():
            for waiter in list(queue):
                self._remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_exception(_shutting_down())

    def depth(self, model: str | None = None) -> int:
        if model is not None:
            return len(self.queues.get(model, ()))
        return sum(len(queue) for queue in self.queues.values())

    def _expire(self, waiter: Waiter) -> None:
        if waiter.future.done():
            return
        self._remove(waiter)
        self._rejected(waiter.model, "queue_timeout")
        waiter.future.set_exception(
            QueueTimeout(
                f"The request waited {self.options.queue_timeout:g} s for a free replica of "
                f"model `{waiter.model}`; the engines are saturated. Try again later.",
                headers=[(b"retry-after", b"%d" % max(1, round(self.options.queue_timeout)))],
            )
        )

    def _remove(self, waiter: Waiter) -> None:
        queue = self.queues.get(waiter.model)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self._queued(waiter, -1)

    def _lift(self, tenant: str) -> None:
        """A tenant with nothing waiting becomes backlogged: no credit banked while idle."""
        backlogged = {w.tenant.name for queue in self.queues.values() for w in queue}
        if tenant in backlogged:
            return
        if not backlogged and self._last_served is not None:
            backlogged = {self._last_served}
        self.counters.lift(tenant, backlogged)

    def _charge(self, tenant: Tenant, weighted: float) -> None:
        self._last_served = tenant.name
        if weighted:
            self.counters.charge(tenant.name, weighted / tenant.share)

    def _queued(self, waiter: Waiter, change: int) -> None:
        if self.watcher is not None:
            self.watcher.queued(waiter.model, waiter.rank, change)

    def _rejected(self, model: str, code: str) -> None:
        if self.watcher is not None:
            self.watcher.rejected(model, code)


def _shutting_down() -> ServerShuttingDown:
    return ServerShuttingDown(
        "The gateway is shutting down; send the request again (to another process)."
    )
