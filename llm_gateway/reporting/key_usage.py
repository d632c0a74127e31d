"""A key's own usage API, answered by the gateway for the calling key only, never relayed:

- ``GET /v1/gateway/key``: the key, and for each level it counts against (the key, its
  owner, its team) this budget period's tokens and cost and what remains of each budget;
- ``DELETE /v1/gateway/key``: the key revokes itself (a key that leaked is ended by whoever
  holds it, at once, without waiting for an admin); recorded in the audit trail as the
  key's own act;
- ``GET /v1/gateway/requests/{request_id}``: one of the key's own requests, from the
  request log (written in batches: a request can be looked up about a second after it
  ended; before that, and for another key's request, it is a 404 ``request_not_found``).

Spend comes from the daily rollups, which the request-log writer keeps; with
``LLM_GATEWAY_REQUEST_LOG=false`` there is nothing to read and spend shows 0.
"""

from __future__ import annotations

from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.db import close_old_connections

from ..core.hooks import Responder
from ..core.request import GatewayRequest
from ..errors import GatewayError
from ..keys import display
from ..models import ApiKey, RequestLog
from .levels import key_levels, money

REQUESTS = "/gateway/requests/"


class RequestNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "request_not_found"


class StaticKey(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "static_key"


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
        principal = request.api_key
        assert principal is not None  # the relay answers a keyless request with a 401
        body: dict[str, Any] | None
        if path == "/gateway/key" and request.method == "DELETE":
            if principal.id is None:
                raise StaticKey(
                    "This key is set in the gateway's settings (LLM_GATEWAY_API_KEYS): it "
                    "cannot be revoked through the API."
                )
            revoke = sync_to_async(self.revoke)
            body = await revoke(principal.id, request.client, request.request_id)
            return 200, orjson.dumps(body)
        if request.method != "GET":
            also = ", or DELETE to revoke this key" if path == "/gateway/key" else ""
            raise MethodNotAllowed(f"{request.method} is not allowed on {path}; use GET{also}.")
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
        return {
            "name": name,
            "prefix": display(prefix),
            "team": row.team.name if row is not None and row.team is not None else None,
            "currency": self.currency,
            "levels": key_levels(row) if row is not None else [],
        }

    def revoke(self, key_id: int, client: str | None, request_id: str) -> dict[str, Any]:
        close_old_connections()
        key = ApiKey.objects.get(pk=key_id)
        key.revoke_itself(client, request_id)
        assert key.revoked_at is not None
        return {
            "name": key.name,
            "prefix": display(key.prefix),
            "revoked": True,
            "revoked_at": int(key.revoked_at.timestamp()),
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
            "cost": money(row.cost) if row.cost is not None else None,
            "currency": self.currency,
            "ttft_ms": row.ttft_ms,
            "duration_ms": row.duration_ms,
            "created": int(row.created_at.timestamp()),
        }
