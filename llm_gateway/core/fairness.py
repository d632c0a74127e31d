"""Virtual token counters (Sheng et al., "Fairness in Serving Large Language Models", OSDI
2024): each tenant's weighted tokens served, divided by its share. The scheduler dispatches
the backlogged tenant with the smallest counter next; a tenant that returns from idle is
lifted to the smallest counter among the backlogged ones, so idle time banks no credit.
Over any window in which two tenants stay backlogged, the weighted service they get differs
by a bounded amount (the paper's bound), whatever each of them offers.

These counters are this process's. With ``REDIS_URL`` the runtime gives the scheduler the
shared ones (``limits.fair_counters``), which keep the same rules across every process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Counters(Protocol):
    def value(self, tenant: str) -> float: ...

    def charge(self, tenant: str, amount: float) -> None:
        """Add ``amount`` (weighted tokens, already divided by the tenant's share)."""
        ...

    def lift(self, tenant: str, backlogged: Iterable[str]) -> None:
        """The tenant became backlogged: raise it to the smallest counter among
        ``backlogged`` (the others waiting), if its own is below."""
        ...


class MemoryCounters:
    def __init__(self) -> None:
        self.counters: dict[str, float] = {}

    def value(self, tenant: str) -> float:
        return self.counters.get(tenant, 0.0)

    def charge(self, tenant: str, amount: float) -> None:
        counters = self.counters
        counters[tenant] = counters.get(tenant, 0.0) + amount

    def lift(self, tenant: str, backlogged: Iterable[str]) -> None:
        counters = self.counters
        floor = min((counters.get(other, 0.0) for other in backlogged), default=None)
        if floor is not None and counters.get(tenant, 0.0) < floor:
            counters[tenant] = floor
