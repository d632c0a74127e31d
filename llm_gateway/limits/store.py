"""The counters behind the limits, and their decision: check every limit of a request and
reserve in all of them, or in none (one atomic step), then settle once the request ended.

Three kinds of counter, the same in process memory (here) and in Redis (``redis_store``):

- ``window``: requests or tokens per minute, a sliding window of sixty one-second buckets.
  A request is admitted if what the last 60 s counted plus what it asks fits the limit, so
  no burst at a minute's edge and no refill during a burst: exactly ``limit`` per minute.
- ``parallel``: requests in flight, as leases that expire unless renewed, so a process that
  dies frees its slots within the lease time.
- ``budget``: tokens per day or month, one counter per period (UTC); ``cost`` the same in
  micro-units of the currency (a money budget).

Tokens are reserved at admission (the estimate must fit) and settled to the actual usage;
what a request uses beyond its reservation is the only overshoot, one request's worth.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .spec import Scope

WINDOW_SECONDS = 60
KINDS = {"requests": "w", "tokens": "w", "parallel": "p", "budget": "b", "cost": "b"}


@dataclass(slots=True)
class Check:
    """One limit a request must pass: ``counter`` names it, ``amount`` is what it asks."""

    kind: str  # requests, tokens, parallel, budget (tokens) or cost (micro-units)
    scope: Scope
    counter: str
    limit: int
    amount: int
    period_end: float = 0.0  # budget: when the period rolls over (unix seconds)
    code: str = field(init=False)  # the counter's kind: w(indow), p(arallel), b(udget)

    def __post_init__(self) -> None:
        self.code = KINDS[self.kind]


@dataclass(slots=True)
class Decision:
    """``refused``: the index of the check that refused, or None. ``used`` and ``resets`` per
    check: what it counted before this request, and the seconds until that count first drops
    (a window's oldest bucket leaves, a lease expires, the period rolls over)."""

    refused: int | None
    too_large: bool  # the refusing check can never admit this much (it exceeds the limit)
    retry_after: float
    second: int  # the window bucket this request was counted in (settle adjusts it)
    used: list[int] = field(default_factory=list)
    resets: list[float] = field(default_factory=list)
    seconds: list[int] = field(default_factory=list)  # per check, when its node's clock differs


class LimitStore(Protocol):
    async def admit(self, checks: list[Check], lease: str, lease_seconds: float) -> Decision:
        """Check every limit and reserve in all of them, or in none."""
        ...

    def settle(
        self, checks: list[Check], decision: Decision, lease: str, actual: int, cost: int = 0
    ) -> None:
        """The request ended having used ``actual`` tokens and cost ``cost`` micro-units:
        adjust reservations, free its lease. Never blocks: a shared store writes in the
        background."""
        ...

    def renew(self, held: dict[str, list[str]], lease_seconds: float) -> None:
        """Extend the leases this process holds (counter -> lease ids)."""
        ...

    async def aclose(self) -> None: ...


class _Window:
    """Sixty one-second buckets, oldest first, with their running total."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: collections.deque[list[int]] = collections.deque()  # [second, count]
        self.total = 0

    def expire(self, second: int) -> None:
        buckets = self.buckets
        while buckets and buckets[0][0] <= second - WINDOW_SECONDS:
            self.total -= buckets.popleft()[1]

    def add(self, second: int, amount: int) -> None:
        buckets = self.buckets
        if buckets and buckets[-1][0] >= second:  # the clock stepped back: the newest bucket
            buckets[-1][1] += amount
        else:
            buckets.append([second, amount])
        self.total += amount

    def adjust(self, second: int, delta: int) -> None:
        for bucket in reversed(self.buckets):
            if bucket[0] == second:
                bucket[1] += delta
                self.total += delta
                return

    def fits_at(self, need: int, limit: int, now: float) -> float:
        """Seconds until ``need`` more fits under ``limit``."""
        freed = 0
        for start, count in self.buckets:
            freed += count
            if self.total + need - freed <= limit:
                return start + WINDOW_SECONDS - now
        return float(WINDOW_SECONDS)


class MemoryStore:
    """The limits of a process alone (no ``REDIS_URL``): the same decisions, in memory."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # wall-clock seconds, as Redis' TIME (tests give their own)
        self.windows: dict[str, _Window] = {}
        self.leases: dict[str, dict[str, float]] = {}
        self.budgets: dict[str, int] = {}
        self._periods: dict[str, str] = {}  # a budget's counter without its period -> with

    async def admit(self, checks: list[Check], lease: str, lease_seconds: float) -> Decision:
        return self.decide(checks, lease, lease_seconds, self.clock())

    def decide(self, checks: list[Check], lease: str, lease_seconds: float, now: float) -> Decision:
        second = int(now)
        decision = Decision(None, False, 0.0, second)
        used_list, resets = decision.used, decision.resets
        for index, check in enumerate(checks):
            code, need, limit = check.code, check.amount, check.limit
            if code == "w":
                window = self.windows.get(check.counter)
                if window is None:
                    window = self.windows[check.counter] = _Window()
                window.expire(second)
                used = window.total
                reset = window.buckets[0][0] + WINDOW_SECONDS - now if window.buckets else 0.0
                retry = window.fits_at(need, limit, now) if used + need > limit else 0.0
            elif code == "p":
                leases = self.leases.get(check.counter, {})
                for expired in [member for member, until in leases.items() if until <= now]:
                    del leases[expired]
                used, reset, retry = len(leases), 0.0, 1.0
            else:
                used = self.budgets.get(check.counter, 0)
                reset = retry = max(check.period_end - now, 0.0)
            used_list.append(used)
            resets.append(reset)
            if decision.refused is None and used + need > limit:
                decision.refused, decision.retry_after = index, retry
                decision.too_large = code != "p" and need > limit
        if decision.refused is None:
            for check in checks:
                self._reserve(check, lease, lease_seconds, now, second)
        return decision

    def _reserve(
        self, check: Check, lease: str, lease_seconds: float, now: float, second: int
    ) -> None:
        if check.code == "w":
            self.windows[check.counter].add(second, check.amount)
        elif check.code == "p":
            self.leases.setdefault(check.counter, {})[lease] = now + lease_seconds
        else:
            stem = check.counter.rsplit(":", 1)[0]
            if (previous := self._periods.get(stem)) != check.counter:
                self.budgets.pop(previous or "", None)  # the period rolled over
                self._periods[stem] = check.counter
            self.budgets[check.counter] = self.budgets.get(check.counter, 0) + check.amount

    def settle(
        self, checks: list[Check], decision: Decision, lease: str, actual: int, cost: int = 0
    ) -> None:
        for check in checks:
            if check.kind == "cost":
                if check.counter in self.budgets:
                    self.budgets[check.counter] += cost - check.amount
            elif check.kind == "tokens":
                window = self.windows.get(check.counter)
                if window is not None:
                    window.adjust(decision.second, actual - check.amount)
            elif check.code == "p":
                self.leases.get(check.counter, {}).pop(lease, None)
            elif check.code == "b" and check.counter in self.budgets:
                self.budgets[check.counter] += actual - check.amount

    def renew(self, held: dict[str, list[str]], lease_seconds: float) -> None:
        until = self.clock() + lease_seconds
        for counter, members in held.items():
            leases = self.leases.get(counter, {})
            for member in members:
                if member in leases:
                    leases[member] = until

    async def aclose(self) -> None:
        pass
