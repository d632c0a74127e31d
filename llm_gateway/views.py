"""The Django face's views: the relay under ``v1/`` and ``health``.

The relay views are async and return ``StreamingHttpResponse`` over the core's reply, so a
stream goes out chunk by chunk; a client disconnect cancels the view's task (Django 5's ASGI
handler does, tested in tests/test_relay_e2e.py), which closes the upstream answer. The body
is read from the request stream up to ``LLM_GATEWAY_MAX_BODY_BYTES``, so Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB by default) does not cut long prompts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections, connection
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt

from .conf import conf
from .core import key_required
from .core.request import GatewayRequest, Reply
from .errors import GatewayError
from .ingress.body import BodyLimit
from .ingress.paths import canonical
from .middleware import error_response, principal_of, request_headers
from .runtime import Runtime, get_runtime
from .upstream.client import Upstream

READY_DATABASE_TIMEOUT = 2.0


def _read_body(request: HttpRequest) -> bytes:
    limit = BodyLimit(conf.MAX_BODY_BYTES)
    limit.declared(request.META.get("CONTENT_LENGTH"))
    body = request.read(limit.limit + 1)
    limit.add(len(body))
    return body


async def _body(reply: Reply) -> AsyncIterator[bytes]:
    try:
        if reply.content is not None:
            yield reply.content
        elif reply.chunks is not None:
            async for chunk in reply.chunks:
                yield chunk
    finally:
        await reply.aclose()


class _ReplyBody:
    """The reply's body for StreamingHttpResponse, which closes what it streams when the
    response is done (``close()``, from Django's thread): a reply that was never iterated (a
    middleware replaced the response) still frees its replica and reaches its observers."""

    __slots__ = ("_reply", "_loop", "_runtime")

    def __init__(self, reply: Reply, runtime: Runtime) -> None:
        self._reply = reply
        self._runtime = runtime
        self._loop = asyncio.get_running_loop()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _body(self._reply)

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._close_soon)

    def _close_soon(self) -> None:
        self._runtime.spawn(self._reply.aclose())  # a no-op once it was closed


def _response(reply: Reply, runtime: Runtime) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_ReplyBody(reply, runtime), status=reply.status)
    del response["Content-Type"]  # the engine's, or none
    for name, value in reply.headers:
        response[name.decode("latin-1")] = value.decode("latin-1")
    return response


@csrf_exempt
async def relay(request: HttpRequest, sub_path: str = "") -> HttpResponseBase:
    """Any OpenAI endpoint: the path below ``v1/`` goes to the engine as it came."""
    runtime = get_runtime()
    runtime.start()
    try:
        # Fail closed, whatever MIDDLEWARE says.
        required = key_required(request.method or "GET", runtime.relay.options)
        principal = await principal_of(request, runtime, required)
        reply = await runtime.relay.handle(
            GatewayRequest(
                request.method or "GET",
                canonical("/" + sub_path),
                request.META.get("QUERY_STRING", "").encode("latin-1"),
                request_headers(request),
                _read_body(request),
                getattr(request, "request_id", None) or "",
                principal,
                request.META.get("REMOTE_ADDR"),
            )
        )
    except GatewayError as exc:
        return error_response(exc)
    return _response(reply, runtime)


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """``metrics``: the Prometheus series (404 when ``LLM_GATEWAY_METRICS`` is off)."""
    metrics = get_runtime().metrics
    if metrics is None:
        raise Http404("Metrics are off.")
    authorization = request.META.get("HTTP_AUTHORIZATION")
    status, headers, body = metrics.render(
        authorization.encode("latin-1") if authorization else None
    )
    response = HttpResponse(body, status=status)
    for name, value in headers:
        response[name.decode()] = value.decode()
    return response


async def health(request: HttpRequest) -> JsonResponse:
    """200 while at least one replica is alive (or not yet probed), 503 once none is; every
    replica listed with its state (vLLM's /health answers 200 or 503 the same way)."""
    runtime = get_runtime()
    pool = runtime.pool
    if not pool.upstreams:
        return JsonResponse({"status": "ok", "engine": {"state": "not configured"}})
    runtime.start()
    replicas = [replica_state(upstream) for upstream in pool.upstreams]
    alive = bool(pool.alive())
    body = {
        "status": "ok" if alive else "error",
        "engine": replicas[0],
        "replicas": replicas,
        "queue": runtime.scheduler.depth(),  # requests waiting at the gateway now
    }
    return JsonResponse(body, status=200 if alive else 503)


async def live(request: HttpRequest) -> JsonResponse:
    """200 while the process serves: for liveness probes (a dead engine must not get the
    gateway restarted; /health says that)."""
    return JsonResponse({"status": "ok"})


async def ready(request: HttpRequest) -> JsonResponse:
    """200 when this process accepts work: not draining, the database reachable, at least one
    replica alive; else 503 with the reasons (for readiness probes and load balancers)."""
    runtime = get_runtime()
    runtime.start()
    reasons = []
    if runtime.draining:
        reasons.append("draining: the process is shutting down")
    pool = runtime.pool
    if pool.upstreams and not pool.alive():
        reasons.append("no engine replica is alive")
    elif not pool.upstreams:
        reasons.append("no engine is configured (LLM_GATEWAY_UPSTREAM_URL)")
    if not reasons and (problem := await database_problem()):
        reasons.append(problem)
    if reasons:
        return JsonResponse({"status": "error", "reasons": reasons}, status=503)
    return JsonResponse({"status": "ok"})


async def database_problem() -> str | None:
    """Why the database does not answer, or None (one query, in a thread, 2 s at most)."""

    def probe() -> None:
        close_old_connections()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    try:
        await asyncio.wait_for(sync_to_async(probe)(), READY_DATABASE_TIMEOUT)
    except (DatabaseError, TimeoutError) as exc:
        return f"the database is unreachable: {type(exc).__name__}"
    return None


def replica_state(upstream: Upstream) -> dict[str, Any]:
    state = upstream.health.status
    ejected = upstream.breaker.ejected_for()
    return {
        "name": upstream.name,
        "state": state.state,
        "reason": state.reason or None,
        "checked_at": state.checked_at,
        "circuit": upstream.breaker.state,
        "in_flight": upstream.in_flight,
        "failures": upstream.breaker.failures,
        "ejected_until": time.time() + ejected if ejected is not None else None,
        "models": sorted(upstream.models),
        "load": upstream.load.describe(),  # what the scheduler judges saturation by
    }
