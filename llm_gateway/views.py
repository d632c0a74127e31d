"""Django views of the gateway: only /health; the /v1 relay is ASGI (see ``relay.py``)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from .conf import conf
from .watchdog import watchdog


async def health(request: HttpRequest) -> JsonResponse:
    """200 while the engine is alive (or not yet probed), 503 with the reason once it is dead."""
    if not conf.UPSTREAM_URL:
        return JsonResponse({"status": "ok", "engine": {"state": "not configured"}})
    watchdog.ensure_started()
    state = watchdog.status
    engine = {"state": state.state, "reason": state.reason or None, "checked_at": state.checked_at}
    if state.state == "dead":
        return JsonResponse({"status": "error", "engine": engine}, status=503)
    return JsonResponse({"status": "ok", "engine": engine})
