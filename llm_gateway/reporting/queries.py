"""Usage questions, answered from the daily rollups (never by scanning the request log):
for the admin's pages and ``manage.py usage_report``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Q, Sum
from django.utils import timezone

from ..conf import conf
from ..models import ErrorDaily, RequestLog, UsageDaily

TOTALS = {  # annotations may not bear the fields' own names
    "n_requests": Sum("requests"),
    "n_prompt": Sum("prompt_tokens"),
    "n_completion": Sum("completion_tokens"),
    "n_errors": Sum("errors"),
    "n_cost": Sum("cost"),
    "n_unpriced": Sum("unpriced"),
}
# ``usage_report --by``: the rollup column (or the ORM path) each grouping reads.
GROUPS = {"team": "team", "owner": "owner", "key": "key_name", "model": "model"}


def _totals(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "requests": int(row["n_requests"] or 0),
        "prompt_tokens": int(row["n_prompt"] or 0),
        "completion_tokens": int(row["n_completion"] or 0),
        "errors": int(row["n_errors"] or 0),
        "cost": f"{row['n_cost'] or 0:.6f}",
        "unpriced": int(row["n_unpriced"] or 0),
    }


def _rollups(
    key: str | None,
    since: dt.date | None,
    until: dt.date | None,
    *,
    team: str | None = None,
    owner: str | None = None,
) -> Any:
    """The daily rollups of one key, team or owner (or all), between two days (both
    included)."""
    rows = UsageDaily.objects.all()
    if key is not None:
        rows = rows.filter(key_name=key)
    if team is not None:
        rows = rows.filter(team=team)
    if owner is not None:
        rows = rows.filter(owner=owner)
    if since is not None:
        rows = rows.filter(day__gte=since)
    if until is not None:
        rows = rows.filter(day__lte=until)
    return rows


def today() -> dt.date:
    return timezone.now().date()


def by_key_and_model(
    key: str | None = None, since: dt.date | None = None, until: dt.date | None = None
) -> list[dict[str, Any]]:
    """One row per key and model over the period: requests, tokens, cost, errors."""
    rows = _rollups(key, since, until)
    totals = rows.values("key_name", "model").annotate(**TOTALS).order_by("key_name", "model")
    return [{"key": row["key_name"], "model": row["model"], **_totals(row)} for row in totals]


def by_model(
    since: dt.date,
    *,
    key: str | None = None,
    team: str | None = None,
    owner: str | None = None,
) -> list[dict[str, Any]]:
    """One row per model since a day, of one key, team or owner: the largest cost first."""
    rows = _rollups(key, since, None, team=team, owner=owner)
    totals = rows.values("model").annotate(**TOTALS).order_by("-n_cost", "model")
    out = []
    for row in totals:
        numbers = _totals(row)
        tokens = numbers["prompt_tokens"] + numbers["completion_tokens"]
        out.append({"model": row["model"] or "-", "tokens": tokens, **numbers})
    return out


def grouped(
    by: str, since: dt.date | None = None, until: dt.date | None = None, key: str | None = None
) -> list[dict[str, Any]]:
    """Totals per team, owner, key or model over the days given (both included), the
    largest cost first; requests of no team or owner are grouped under ``-``."""
    rows = _rollups(key, since, until)
    field = GROUPS[by]
    totals = rows.values(field).annotate(**TOTALS).order_by("-n_cost", field)
    return [{by: row[field] or "-", **_totals(row)} for row in totals]


def daily(
    key: str | None = None,
    days: int = 30,
    *,
    team: str | None = None,
    owner: str | None = None,
) -> list[dict[str, Any]]:
    """Each of the last ``days`` days (oldest first, days without use included): requests,
    tokens and cost of one key, team or owner."""
    first = today() - dt.timedelta(days=days - 1)
    rows = _rollups(key, first, None, team=team, owner=owner)
    found = {row["day"]: row for row in rows.values("day").annotate(**TOTALS)}
    out = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        totals = _totals(found[day]) if day in found else None
        out.append(
            {
                "day": day,
                "requests": totals["requests"] if totals else 0,
                "tokens": totals["prompt_tokens"] + totals["completion_tokens"] if totals else 0,
                "cost": Decimal(totals["cost"]) if totals else Decimal(0),
            }
        )
    return out


def top(
    field: str, since: dt.date, limit: int = 10, by: str = "tokens", team: str | None = None
) -> list[dict[str, Any]]:
    """The keys (``key_name``) or models (``model``) that used the most tokens (or ``by``
    cost), of one team or of all."""
    rows = UsageDaily.objects.filter(day__gte=since)
    if team is not None:
        rows = rows.filter(team=team)
    rows = (
        rows.values(field)
        .annotate(**TOTALS, n_tokens=Sum("prompt_tokens") + Sum("completion_tokens"))
        .order_by("-n_cost" if by == "cost" else "-n_tokens")[:limit]
    )
    out = []
    for row in rows:
        totals = _totals(row)
        tokens = totals["prompt_tokens"] + totals["completion_tokens"]
        out.append({"name": row[field] or "-", "tokens": tokens, **totals})
    return out


def errors_by_code(since: dt.date) -> list[dict[str, Any]]:
    rows = ErrorDaily.objects.filter(day__gte=since).values("code").annotate(total=Sum("count"))
    return [
        {"code": row["code"], "count": int(row["total"] or 0)} for row in rows.order_by("-total")
    ]


# A request record's fields as usage_report prints them: the ones scripts rely on first.
RECORD_COLUMNS: tuple[str, ...] = (
    "request_id",
    "key",
    "model",
    "status",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "usage_source",
    "ending",
    "ttft_ms",
    "duration_ms",
)
_MORE_FIELDS = ("cached_tokens", "ttfb_ms", "created_at", "client")


def last_requests(count: int, key: str | None = None) -> list[dict[str, Any]]:
    """The last ``count`` request records, newest first (the log's index on time)."""
    rows = RequestLog.objects.order_by("-created_at", "-id")
    if key is not None:
        rows = rows.filter(Q(key_name=key))
    fields = [("key_name" if f == "key" else f) for f in (*RECORD_COLUMNS, *_MORE_FIELDS)]
    out = []
    for row in rows.values(*fields)[:count]:
        row["key"] = row.pop("key_name")
        row["created_at"] = row["created_at"].isoformat()
        out.append(row)
    return out


def team_spend(team: str, since: dt.date | None = None) -> str:
    """A team's cost since the first of this month (UTC), as the admin lists it."""
    first = since or today().replace(day=1)
    spent = UsageDaily.objects.filter(team=team, day__gte=first).aggregate(cost=Sum("cost"))
    return f"{spent['cost'] or 0:.2f} {conf.CURRENCY}"
