"""What a key has spent this budget period at each level it counts against (the key, its
owner, its team), and what remains of each budget: read from the daily rollups. One
definition for the key's usage API (``GET /v1/gateway/key``) and the portal's pages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Q, Sum

from ..limits.spec import parse_models
from ..models import ApiKey, LimitFields, TeamLimits, UsageDaily, UserLimits


def period_start(period: str, today: dt.date | None = None) -> dt.date:
    """The first day (UTC) of the budget period (``day`` or ``month``) that holds today."""
    today = today or dt.datetime.now(dt.UTC).date()
    return today.replace(day=1) if period == "month" else today


def money(amount: Decimal) -> str:
    """An amount as the API and the pages write it: six decimal places, no exponent."""
    return f"{amount.quantize(Decimal('0.000001')):f}"


def level(level: str, name: str, limits: LimitFields | None, rows: Q) -> dict[str, Any]:
    """One level's period, tokens and cost spent, budgets remaining (``None``: no budget)."""
    period = (limits.budget_period if limits is not None else "") or "day"
    spent = UsageDaily.objects.filter(rows, day__gte=period_start(period)).aggregate(
        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), cost=Sum("cost")
    )
    tokens = int(spent["prompt"] or 0) + int(spent["completion"] or 0)
    cost = Decimal(spent["cost"] or 0)
    token_budget = limits.token_budget if limits is not None else None
    cost_budget = limits.cost_budget if limits is not None else None
    return {
        "level": level,
        "name": name,
        "period": period,
        "tokens": tokens,
        "cost": money(cost),
        "token_budget_remaining": max(token_budget - tokens, 0) if token_budget else None,
        "cost_budget_remaining": money(max(cost_budget - cost, Decimal(0)))
        if cost_budget
        else None,
        "limits": limits_of(limits),
    }


def key_level(key: ApiKey) -> dict[str, Any]:
    return level("key", key.name, key, Q(key_id=key.pk))


def team_level(team: Group) -> dict[str, Any]:
    limits = TeamLimits.objects.filter(group=team).first()
    return level("team", team.name, limits, Q(team=team.name))


def key_levels(key: ApiKey) -> list[dict[str, Any]]:
    """Each level the key counts against: the key, then its owner and its team if it has
    them (``key`` with ``owner`` and ``team`` selected)."""
    levels = [key_level(key)]
    if key.owner is not None:
        owner = UserLimits.objects.filter(user=key.owner).first()
        levels.append(level("owner", key.owner.get_username(), owner, Q(key__owner=key.owner)))
    if key.team is not None:
        levels.append(team_level(key.team))
    return levels


def limits_of(limits: LimitFields | None) -> dict[str, Any]:
    """The limits set on a row, by name (those not set left out)."""
    if limits is None:
        return {}
    values = {
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "max_parallel": limits.max_parallel,
        "allowed_models": list(parse_models(limits.allowed_models)),
        "token_budget": limits.token_budget,
        "cost_budget": money(limits.cost_budget) if limits.cost_budget else None,
        "budget_period": limits.budget_period or "day",
    }
    return {name: value for name, value in values.items() if value not in (None, [])}
