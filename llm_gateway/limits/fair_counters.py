"""The scheduler's virtual token counters shared by every gateway process through Redis, so
that fairness holds across processes and hosts (``core.fairness``: the rules).

The scheduler reads its counters on every dispatch decision, on the event loop, with no
round trip: each process keeps a mirror and, every ``interval`` (0.1 s), writes what it has
charged each tenant in all (idle lifts included) and reads every process's totals back, in
one script call. Each process writes only its own totals (a field per tenant and process),
and writes them whole, not as increments: a write that Redis runs late, after the process
gave it up for lost, is repeated harmlessly (an increment would then count twice). Counters
are at most an interval behind the other processes. With Redis unreachable, each process
goes on with its own mirror (per-process fairness, as the limits fail open) and writes its
totals once Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

from ..core.fairness import MemoryCounters
from ..upstream.background import Background
from .redis_client import RedisUnavailable, Script
from .redis_nodes import connection_for

logger = logging.getLogger(__name__)
TTL_SECONDS = 86_400  # counters nobody charged for a day are dropped

# KEYS[1]: the counters' hash; ARGV[1]: its TTL, then field, total pairs to set. A field is
# "<tenant> <process>": a tenant's name has no space (key:12, owner:3, team:5).
SYNC = Script(
    """
if #ARGV > 1 then
    redis.call('HSET', KEYS[1], unpack(ARGV, 2))
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return redis.call('HGETALL', KEYS[1])
"""
)


class SharedCounters(MemoryCounters):
    def __init__(
        self,
        url: str,
        namespace: str,
        interval: float = 0.1,
        timeout: float = 0.5,
        cluster: bool = False,
    ) -> None:
        super().__init__()
        self.key = f"{namespace}:fair:counters"
        self.interval = interval
        self.connection = connection_for(url, timeout, (SYNC,), cluster)
        self.process = uuid.uuid4().hex[:12]
        self.mine: dict[str, float] = {}  # what this process charged each tenant, in all
        self.dirty: set[str] = set()  # tenants whose total Redis has not taken yet
        self.shared = False  # the last sync reached Redis
        self._loop = Background(self._run)

    def charge(self, tenant: str, amount: float) -> None:
        super().charge(tenant, amount)
        self._mine(tenant, amount)

    def lift(self, tenant: str, backlogged: Iterable[str]) -> None:
        before = self.value(tenant)
        super().lift(tenant, backlogged)
        if (raised := self.value(tenant) - before) > 0:
            self._mine(tenant, raised)

    def _mine(self, tenant: str, amount: float) -> None:
        self.mine[tenant] = self.mine.get(tenant, 0.0) + amount
        self.dirty.add(tenant)

    async def sync(self) -> None:
        sent, self.dirty = self.dirty, set()
        args: list[object] = [TTL_SECONDS]
        for tenant in sent:
            args += [f"{tenant} {self.process}", repr(self.mine[tenant])]
        try:
            reply = await self.connection.evalsha(SYNC, [self.key], args)
        except RedisUnavailable as exc:
            self.dirty |= sent  # written again at the next sync
            if self.shared:
                logger.warning("fair-share counters: %s; each process counts alone", exc)
            self.shared = False
            return
        if not self.shared:
            logger.debug("fair-share counters shared in Redis")  # no request's: debug
        self.shared = True
        counters = dict(self.mine)  # this process's own, as they are now
        for field, value in zip(reply[::2], reply[1::2], strict=True):
            tenant, _, process = field.decode().rpartition(" ")
            if process != self.process:
                counters[tenant] = counters.get(tenant, 0.0) + float(value)
        self.counters = counters

    def ensure_started(self) -> None:
        if not self._loop.running():
            self._loop.start()

    async def _run(self) -> None:
        try:
            while True:
                await self.sync()
                await asyncio.sleep(self.interval)
        finally:  # cancelled (its loop ends): its connection goes with it
            self.connection.close()

    async def aclose(self) -> None:
        await self._loop.aclose()
        if self.dirty:
            await self.sync()
        self.connection.close()
