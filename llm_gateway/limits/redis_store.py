"""The limits shared by every process on every machine: Redis, one script call to admit a
request (check every limit, reserve in all or none) and one to settle it.

The scripts are written here because no library does this: ``limits`` checks one limit at a
time and cannot give back part of a reservation. The decisions are ``store.MemoryStore``'s,
line for line, on Redis' own clock (``TIME``), so machines with skewed clocks agree. Every
counter of a request carries the owner's hash tag, so one script touches one cluster slot.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import hiredis

from .redis_client import RedisConnection, Script
from .redis_sentinel import SCHEMES, SentinelConnection
from .store import WINDOW_SECONDS, Check, Decision

logger = logging.getLogger(__name__)

ADMIT = Script(
    """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now_ms = sec * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local kinds, limits, ends, amounts = {}, {}, {}, {}
for kind, limit, period_end in string.gmatch(ARGV[3], '(%a):(%d+):(%d+)') do
  kinds[#kinds + 1], limits[#limits + 1], ends[#ends + 1] = kind, tonumber(limit), period_end
end
for amount in string.gmatch(ARGV[4], '%d+') do amounts[#amounts + 1] = tonumber(amount) end
local lease = ARGV[5]
local used, resets = {}, {}
local refused, too_large, retry = 0, 0, 0
for i = 1, #KEYS do
  local kind, limit, amount = kinds[i], limits[i], amounts[i]
  local key, u, reset = KEYS[i], 0, 0
  if kind == 'w' then
    local flat = redis.call('HGETALL', key)
    local buckets = {}
    for j = 1, #flat, 2 do
      local s, c = tonumber(flat[j]), tonumber(flat[j + 1])
      if s <= sec - window then
        redis.call('HDEL', key, flat[j])
      else
        u = u + c
        buckets[#buckets + 1] = {s, c}
      end
    end
    table.sort(buckets, function(a, b) return a[1] < b[1] end)
    if #buckets > 0 then reset = (buckets[1][1] + window) * 1000 - now_ms end
    if refused == 0 and u + amount > limit then
      refused, retry = i, window * 1000
      if amount > limit then too_large = 1 end
      local freed = 0
      for j = 1, #buckets do
        freed = freed + buckets[j][2]
        if u + amount - freed <= limit then
          retry = (buckets[j][1] + window) * 1000 - now_ms
          break
        end
      end
    end
  elseif kind == 'p' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
    u = redis.call('ZCARD', key)
    if refused == 0 and u + amount > limit then refused, retry = i, 1000 end
  else
    u = tonumber(redis.call('GET', key) or '0')
    reset = math.max(tonumber(ends[i]) * 1000 - now_ms, 0)
    if refused == 0 and u + amount > limit then
      refused, retry = i, reset
      if amount > limit then too_large = 1 end
    end
  end
  used[i], resets[i] = u, reset
end
if refused == 0 then
  for i = 1, #KEYS do
    local kind, amount, key = kinds[i], amounts[i], KEYS[i]
    if kind == 'w' then
      redis.call('HINCRBY', key, sec, amount)
      redis.call('EXPIRE', key, window + 1)
    elseif kind == 'p' then
      redis.call('ZADD', key, now_ms + lease_ms, lease)
      redis.call('PEXPIRE', key, lease_ms * 2)
    else
      redis.call('INCRBY', key, amount)
      redis.call('EXPIREAT', key, ends[i] + 86400)
    end
  end
end
local out = {refused, too_large, retry, sec}
for i = 1, #KEYS do
  out[#out + 1] = used[i]
  out[#out + 1] = resets[i]
end
return out
"""
)

SETTLE = Script(
    """
local sec, lease, i = ARGV[1], ARGV[2], 0
for kind, delta in string.gmatch(ARGV[3], '(%a):(-?%d+)') do
  i = i + 1
  delta = tonumber(delta)
  if kind == 'w' then
    if redis.call('HEXISTS', KEYS[i], sec) == 1 then redis.call('HINCRBY', KEYS[i], sec, delta) end
  elseif kind == 'p' then
    redis.call('ZREM', KEYS[i], lease)
  elseif redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], delta)
  end
end
return 1
"""
)

RENEW = Script(
    """
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local at = 2
for i = 1, #KEYS do
  local count = tonumber(ARGV[at])
  for j = 1, count do redis.call('ZADD', KEYS[i], 'XX', until_ms, ARGV[at + j]) end
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[1]) * 2)
  at = at + count + 1
end
return 1
"""
)


Shape = tuple[tuple[str, str, int, float], ...]  # per check: counter, code, limit, period end


def admit_args(shape: Shape, lease_seconds: float) -> list[Any]:
    """``ADMIT``'s arguments but for the amounts and the lease (the same for every request of
    a key in a period)."""
    spec = ";".join(f"{code}:{limit}:{int(end)}" for _, code, limit, end in shape)
    return [WINDOW_SECONDS, int(lease_seconds * 1000), spec]


def decision_of(reply: list[Any]) -> Decision:
    refused, too_large, retry_ms, second = reply[:4]
    return Decision(
        refused - 1 if refused else None,
        bool(too_large),
        retry_ms / 1000,
        second,
        reply[4::2],
        [ms / 1000 for ms in reply[5::2]],
    )


def settle_deltas(checks: list[Check], actual: int, cost: int) -> tuple[list[str], list[str]]:
    """``SETTLE``'s keys and deltas: reservations to the actual use, the lease freed."""
    keys, deltas = [], []
    for check in checks:
        if check.kind == "requests":
            continue
        delta = (cost if check.kind == "cost" else actual) - check.amount
        if check.code != "p" and delta == 0:
            continue
        keys.append(check.counter)
        deltas.append(f"{check.code}:{delta}")
    return keys, deltas


class RedisStore:
    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self._connection: RedisConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heads: dict[tuple[Any, float], bytes] = {}
        self._pending: set[asyncio.Future[Any]] = set()  # settles sent, not yet answered

    def connection(self) -> RedisConnection:
        loop = asyncio.get_running_loop()
        if self._connection is None or self._loop is not loop:
            scripts = (ADMIT, SETTLE, RENEW)
            sentinel = self.url.startswith(tuple(f"{scheme}://" for scheme in SCHEMES))
            kind = SentinelConnection if sentinel else RedisConnection
            self._connection = kind(self.url, self.timeout, scripts)
            self._loop = loop
        return self._connection

    async def admit(self, checks: list[Check], lease: str, lease_seconds: float) -> Decision:
        shape = tuple((c.counter, c.code, c.limit, c.period_end) for c in checks)
        head = self._heads.get((shape, lease_seconds))
        if head is None:
            head = self._head(shape, lease_seconds)
        amounts = ",".join([str(check.amount) for check in checks])
        reply = await self.connection().evalsha_packed(ADMIT, head, amounts, lease)
        return decision_of(reply)

    def _head(self, shape: Shape, lease_seconds: float) -> bytes:
        """What every admission of a key sends the same: keys, limits, periods (cached)."""
        if len(self._heads) > 10_000:
            self._heads.clear()
        keys = [counter for counter, *_ in shape]
        args = admit_args(shape, lease_seconds)
        head = self._heads[(shape, lease_seconds)] = ADMIT.head(keys, args, extra=2)
        return head

    def settle(
        self, checks: list[Check], decision: Decision, lease: str, actual: int, cost: int = 0
    ) -> None:
        keys, deltas = settle_deltas(checks, actual, cost)
        if keys:
            args = [decision.second, lease, ";".join(deltas)]
            connection = self.connection()
            reply = connection.send_nowait(SETTLE.command(keys, args))
            if reply is None:  # not connected: connect first
                self._spawn(connection.evalsha(SETTLE, keys, args), "settle")
            else:
                self._pending.add(reply)
                reply.add_done_callback(self._settled)

    def renew(self, held: dict[str, list[str]], lease_seconds: float) -> None:
        if not held:
            return
        args: list[Any] = [int(lease_seconds * 1000)]
        for members in held.values():
            args += (len(members), *members)
        self._spawn(self.connection().evalsha(RENEW, list(held), args), "lease renewal")

    def _settled(self, reply: asyncio.Future[Any]) -> None:
        self._pending.discard(reply)
        error = reply.exception() if not reply.cancelled() else None
        if error is None and isinstance(reply.result(), hiredis.ReplyError):
            error = reply.result()
        if error is not None:
            logger.warning("limits settle failed: %s", error)

    def _spawn(self, call: Any, what: str) -> None:
        task = asyncio.ensure_future(call)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._done(done, what))

    def _done(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Reservations then run out with their window or lease: nothing is held forever.
            logger.warning("limits %s failed: %s", what, task.exception())

    async def aclose(self) -> None:
        waiting = [*self._tasks, *self._pending]
        if waiting:
            await asyncio.wait(waiting, timeout=self.timeout)
        if self._connection is not None:
            self._connection.close()
            self._connection = None
