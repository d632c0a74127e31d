"""What a key (or its owner) may do: the limits as read from the database, kept in the key
store's entry so that a request reads no table."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

PERIODS = ("day", "month")
# The columns of a limits row (on ApiKey and on UserLimits), in the order of ``Limits``.
FIELDS = ("rpm", "tpm", "max_parallel", "allowed_models", "token_budget", "budget_period")
# A key's row reads its owner's limits under this prefix (the ORM's path to UserLimits).
OWNER_LIMITS = "owner__llm_gateway_limits__"


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    models: tuple[str, ...] = ()  # names or glob patterns; empty: every model
    token_budget: int | None = None
    budget_period: str = "day"
    # The patterns as one regular expression (None: every model), built once.
    _matcher: re.Pattern[str] | None = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if self.models:
            pattern = "|".join(f"(?:{fnmatch.translate(p)})" for p in self.models)
            object.__setattr__(self, "_matcher", re.compile(pattern))

    def __bool__(self) -> bool:
        return bool(self.rpm or self.tpm or self.max_parallel or self.models or self.token_budget)

    def allows(self, model: str) -> bool:
        return self._matcher is None or self._matcher.match(model) is not None


@dataclass(frozen=True, slots=True)
class Scope:
    """One holder of limits: ``kind`` is ``key`` or ``user``; ``tag`` the Redis hash tag that
    every counter of the request shares (the owner's, so that one script sees them all).
    ``id``: a key's public prefix (unique even across databases), or the user's id."""

    kind: str
    id: str
    name: str
    limits: Limits
    tag: str

    @property
    def label(self) -> str:
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

    return Limits(
        rpm=number("rpm"),
        tpm=number("tpm"),
        max_parallel=number("max_parallel"),
        models=parse_models(values.get(prefix + "allowed_models")),
        token_budget=number("token_budget"),
        budget_period=values.get(prefix + "budget_period") or "day",
    )


def scopes_for(row: dict[str, Any], owner_prefix: str) -> tuple[Scope, ...]:
    """The scopes of a key row read with its owner's limits (``owner_prefix`` + field)."""
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
    return tuple(scopes)
