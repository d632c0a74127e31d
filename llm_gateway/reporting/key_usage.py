"""A key's own usage API, answered by the gateway for the calling key only, never relayed:

- ``GET /v1/gateway/key``: the key, and for each level it counts against (the key, its
  owner, its team) this budget period's tokens and cost and what remains of each budget;
- ``GET /v1/gateway/requests/{request_id}``: one of the key's own requests, from the
  request log (written in batches: a request can be looked up about a second after it
  ended; before that, and for another key's request, it is a 404 ``request_not_found``).

Spend comes from the daily rollups, which the request-log writer keeps; with
``LLM_GATEWAY_REQUEST_LOG=false`` there is nothing to read and spend shows 0.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.db.models import Q, Sum

from ..core.hooks import Responder
from ..core.request import GatewayRequest
from ..errors import GatewayError
from ..keys import display
from ..limits.spec import parse_models
from ..models import ApiKey, LimitFields, RequestLog, TeamLimits, UsageDaily, UserLimits

REQUESTS = "/gateway/requests/"


class RequestNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "request_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class KeyUsage(Responder):
    def __init__(self, currency: str) -> None:
        self.currency = currency

    async def respond(self, request: GatewayRequest) -> tuple[int, bytes] | None:
        path = request.path
        if path != "/gateway/key" and not (path.startswith(REQUESTS) and len(path) > len(REQUESTS)):
            return None
        if request.method != "GET":
            raise MethodNotAllowed(f"{request.method} is not allowed on {path}; use GET.")
        principal = request.api_key
        assert principal is not None  # the relay answers a keyless request with a 401
        body: dict[str, Any] | None
        if path == "/gateway/key":
            body = await sync_to_async(self.key)(principal.id, principal.name, principal.prefix)
        else:
            request_id = path[len(REQUESTS) :]
            body = await sync_to_async(self.request)(principal.id, request_id)
            if body is None:
                raise RequestNotFound(
                    f"No request {request_id!r} of this key in the request log. A request is "
                    "written there about a second after it ended; ask again then."
                )
        return 200, orjson.dumps(body)

    def key(self, key_id: int | None, name: str, prefix: str) -> dict[str, Any]:
        close_old_connections()
        row = (
            ApiKey.objects.select_related("owner", "team").filter(pk=key_id).first()
            if key_id is not None
            else None
        )
        levels = []
        if row is not None:
            levels.append(self.level("key", row.name, row, Q(key_id=row.pk)))
            if row.owner is not None:
                owner = UserLimits.objects.filter(user=row.owner).first()
                levels.append(
                    self.level("owner", row.owner.get_username(), owner, Q(key__owner=row.owner))
                )
            if row.team is not None:
                team = TeamLimits.objects.filter(group=row.team).first()
                levels.append(self.level("team", row.team.name, team, Q(team=row.team.name)))
        return {
            "name": name,
            "prefix": display(prefix),
            "team": row.team.name if row is not None and row.team is not None else None,
            "currency": self.currency,
            "levels": levels,
        }

    def level(self, level: str, name: str, limits: LimitFields | None, rows: Q) -> dict[str, Any]:
        period = (limits.budget_period if limits is not None else "") or "day"
        today = dt.datetime.now(dt.UTC).date()
        start = today.replace(day=1) if period == "month" else today
        spent = UsageDaily.objects.filter(rows, day__gte=start).aggregate(
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
            "cost": _money(cost),
            "token_budget_remaining": max(token_budget - tokens, 0) if token_budget else None,
            "cost_budget_remaining": _money(max(cost_budget - cost, Decimal(0)))
            if cost_budget
            else None,
            "limits": _limits(limits),
        }

    def request(self, key_id: int | None, request_id: str) -> dict[str, Any] | None:
        if key_id is None:
            return None  # a static key from the settings has no rows of its own
        close_old_connections()
        row = (
            RequestLog.objects.filter(key_id=key_id, request_id=request_id)
            .order_by("-created_at")
            .first()
        )
        if row is None:
            return None
        prompt, completion = row.prompt_tokens, row.completion_tokens
        total = None if prompt is None and completion is None else (prompt or 0) + (completion or 0)
        return {
            "request_id": row.request_id,
            "model": row.model,
            "status": row.status,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": total,
                "cached_tokens": row.cached_tokens,
            },
            "cost": _money(row.cost) if row.cost is not None else None,
            "currency": self.currency,
            "ttft_ms": row.ttft_ms,
            "duration_ms": row.duration_ms,
            "created": int(row.created_at.timestamp()),
        }


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.000001')):f}"


def _limits(limits: LimitFields | None) -> dict[str, Any]:
    if limits is None:
        return {}
    values = {
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "max_parallel": limits.max_parallel,
        "allowed_models": list(parse_models(limits.allowed_models)),
        "token_budget": limits.token_budget,
        "cost_budget": _money(limits.cost_budget) if limits.cost_budget else None,
        "budget_period": limits.budget_period or "day",
    }
    return {name: value for name, value in values.items() if value not in (None, [])}
