"""The checks a key's limits call for, worked out once per key and period (their counter
names, limits and the budget's period), so that a request only adds its amounts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .spec import Scope
from .store import Check

TOKEN_KINDS = frozenset({"tokens", "budget"})  # counted in tokens; "cost" in micro-units


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str
    scope: Scope
    counter: str
    limit: int
    period_end: float


class Plan:
    __slots__ = (
        "scopes",
        "planned",
        "until",
        "counts_tokens",
        "counts_cost",
        "holds_slot",
        "allowed",
    )

    def __init__(self, scopes: tuple[Scope, ...], namespace: str, now: float) -> None:
        self.scopes = scopes
        planned: list[Planned] = []
        until = float("inf")
        for scope in scopes:
            limits = scope.limits
            base = f"{namespace}:{{{scope.tag}}}:{scope.kind}:{scope.id}:"
            if limits.rpm:
                planned.append(Planned("requests", scope, base + "requests", limits.rpm, 0))
            if limits.tpm:
                planned.append(Planned("tokens", scope, base + "tokens", limits.tpm, 0))
            if limits.max_parallel:
                parallel = limits.max_parallel
                planned.append(Planned("parallel", scope, base + "parallel", parallel, 0))
            if limits.token_budget:
                period, end = budget_period(limits.budget_period, now)
                counter, until = f"{base}budget:{period}", min(until, end)
                planned.append(Planned("budget", scope, counter, limits.token_budget, end))
            if limits.cost_budget:
                period, end = budget_period(limits.budget_period, now)
                counter, until = f"{base}cost:{period}", min(until, end)
                planned.append(Planned("cost", scope, counter, limits.cost_budget, end))
        self.planned = planned
        self.until = until  # the plan names the current budget period: renewed after it
        self.counts_tokens = any(p.kind in TOKEN_KINDS for p in planned)
        self.counts_cost = any(p.kind == "cost" for p in planned)
        self.holds_slot = any(p.kind == "parallel" for p in planned)
        self.allowed = tuple(scope for scope in scopes if scope.limits.models)

    def checks(self, reserve: int, cost: int = 0) -> list[Check]:
        """``reserve``: the request's tokens at most; ``cost``: its cost at most (micro-units)."""
        return [
            Check(
                p.kind,
                p.scope,
                p.counter,
                p.limit,
                reserve if p.kind in TOKEN_KINDS else cost if p.kind == "cost" else 1,
                p.period_end,
            )
            for p in self.planned
        ]


def budget_period(period: str, now: float) -> tuple[str, float]:
    """The budget's current period (UTC) and when it ends, as unix seconds."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    if period == "month":
        start = today.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
        name = start.strftime("%Y-%m")
    else:
        end, name = today + dt.timedelta(days=1), today.isoformat()
    return name, dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC).timestamp()
