"""What a key, its owner and its team may do: the limits as read from the database, kept in
the key store's entry so that a request reads no table."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..core.cost import micro

PERIODS = ("day", "month")
# The columns of a limits row (on ApiKey, UserLimits and TeamLimits).
FIELDS = (
    "rpm",
    "tpm",
    "max_parallel",
    "allowed_models",
    "token_budget",
    "cost_budget",
    "budget_period",
)
# A key's row reads its owner's and its team's limits under these prefixes (the ORM's paths
# to UserLimits and TeamLimits).
OWNER_LIMITS = "owner__llm_gateway_limits__"
TEAM_LIMITS = "team__llm_gateway_limits__"


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    models: tuple[str, ...] = ()  # names or glob patterns; empty: every model
    token_budget: int | None = None
    cost_budget: int | None = None  # micro-units of the currency (core.cost.micro)
    budget_period: str = "day"  # of both budgets
    # The patterns as one regular expression (None: every model), built once.
    _matcher: re.Pattern[str] | None = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if self.models:
            pattern = "|".join(f"(?:{fnmatch.translate(p)})" for p in self.models)
            object.__setattr__(self, "_matcher", re.compile(pattern))

    def __bool__(self) -> bool:
        return bool(
            self.rpm
            or self.tpm
            or self.max_parallel
            or self.models
            or self.token_budget
            or self.cost_budget
        )

    def allows(self, model: str) -> bool:
        return self._matcher is None or self._matcher.match(model) is not None


@dataclass(frozen=True, slots=True)
class Scope:
    """One holder of limits: ``kind`` is ``key``, ``user`` or ``team``; ``tag`` the Redis hash
    tag of its counters (a key's and its owner's share the owner's; a team's is its own, as
    every member's keys count there). ``id``: a key's public prefix (unique even across
    databases), the user's or the group's id."""

    kind: str
    id: str
    name: str
    limits: Limits
    tag: str

    @property
    def label(self) -> str:
        if self.kind == "team":
            return f"team {self.name}"
        return f"API key '{self.name}'" if self.kind == "key" else f"user '{self.name}'"


def parse_models(value: str | None) -> tuple[str, ...]:
    """``"llama-3-*, qwen"`` -> ``("llama-3-*", "qwen")``: commas or whitespace separate."""
    if not value:
        return ()
    return tuple(part for part in value.replace(",", " ").split() if part)


def limits_from(values: dict[str, Any], prefix: str = "") -> Limits:
    """A ``Limits`` from a ``values()`` row; ``prefix`` reads a related row's columns."""

    def number(name: str) -> int | None:
        value = values.get(prefix + name)
        return int(value) if value else None  # 0 and None both mean no limit

    cost = values.get(prefix + "cost_budget")

    return Limits(
        rpm=number("rpm"),
        tpm=number("tpm"),
        max_parallel=number("max_parallel"),
        models=parse_models(values.get(prefix + "allowed_models")),
        token_budget=number("token_budget"),
        cost_budget=micro(Decimal(cost)) or None if cost else None,
        budget_period=values.get(prefix + "budget_period") or "day",
    )


def scopes_for(
    row: dict[str, Any], owner_prefix: str = OWNER_LIMITS, team_prefix: str = TEAM_LIMITS
) -> tuple[Scope, ...]:
    """The scopes of a key row read with its owner's and its team's limits (prefix + field),
    in the order a refusal is looked for: key, owner, team."""
    owner_id = row.get("owner_id")
    tag = f"u{owner_id}" if owner_id is not None else f"k{row['prefix']}"
    scopes = []
    key_limits = limits_from(row)
    if key_limits:
        scopes.append(Scope("key", row["prefix"], row["name"], key_limits, tag))
    if owner_id is not None:
        owner_limits = limits_from(row, owner_prefix)
        if owner_limits:
            name = str(row.get("owner_name") or owner_id)
            scopes.append(Scope("user", str(owner_id), name, owner_limits, tag))
    team_id = row.get("team_id")
    if team_id is not None:
        team_limits = limits_from(row, team_prefix)
        if team_limits:
            name = str(row.get("team_name") or team_id)
            scopes.append(Scope("team", str(team_id), name, team_limits, f"t{team_id}"))
    return tuple(scopes)
