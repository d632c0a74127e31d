"""The Django face's middleware, in both of Django's modes (sync and async)."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from llm_gateway.core import Principal
from llm_gateway.errors import EngineDeadError
from llm_gateway.keys import SCOPE_KEY
from llm_gateway.middleware import (
    ApiKeyMiddleware,
    EngineErrorMiddleware,
    RequestIdMiddleware,
)

STATIC = "sk-static-middleware-test-key-0123456789"


def seen_view(request: HttpRequest) -> HttpResponse:
    key = request.api_key  # type: ignore[attr-defined]
    return HttpResponse(json.dumps({"key": key and key.name, "id": request.request_id}))  # type: ignore[attr-defined]


async def async_seen_view(request: HttpRequest) -> HttpResponse:
    return seen_view(request)


def chain(view):
    return RequestIdMiddleware(EngineErrorMiddleware(ApiKeyMiddleware(view)))


@override_settings(LLM_GATEWAY_API_KEYS=STATIC)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_key_and_request_id_as_the_asgi_face_sets_them(mode):
    app = chain(seen_view if mode == "sync" else async_seen_view)
    factory = RequestFactory()

    def call(request):
        result = app(request)
        return asyncio.run(result) if mode == "async" else result

    r = call(factory.get("/v1/x", HTTP_X_REQUEST_ID="abc-1"))
    assert r.status_code == 401 and r["WWW-Authenticate"] == "Bearer"
    assert json.loads(r.content)["error"]["code"] == "missing_api_key"
    assert r["X-Request-Id"] == "abc-1"
    r = call(factory.get("/v1/x", HTTP_AUTHORIZATION=f"Bearer {STATIC}"))
    assert r.status_code == 200 and json.loads(r.content)["key"] == "static"
    assert json.loads(r.content)["id"] == r["X-Request-Id"] and len(r["X-Request-Id"]) == 32
    r = call(factory.get("/elsewhere"))  # not a guarded prefix: no key needed
    assert r.status_code == 200 and json.loads(r.content)["key"] is None
    r = call(factory.get("/v1/x", HTTP_X_REQUEST_ID="bad id with spaces"))
    assert r["X-Request-Id"] != "bad id with spaces"


def test_a_key_the_asgi_face_checked_is_not_checked_again():
    principal = Principal(7, "from-asgi", "abcd0123")
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/x",
        # No Authorization at all: only the ASGI face's result can pass.
        "headers": [(b"host", b"localhost")],
        "query_string": b"",
        SCOPE_KEY: principal,
        "llm_gateway.request_id": "asgi-id",
    }
    request = ASGIRequest(scope, __import__("io").BytesIO())
    response = asyncio.run(chain(async_seen_view)(request))
    assert response.status_code == 200
    assert json.loads(response.content) == {"key": "from-asgi", "id": "asgi-id"}


@override_settings(LLM_GATEWAY_API_KEYS=STATIC, ALLOWED_HOSTS=["gateway.example"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_host_outside_allowed_hosts_is_an_openai_error_on_the_api_only(mode):
    app = chain(seen_view if mode == "sync" else async_seen_view)

    def call(path: str, host: str):
        result = app(
            RequestFactory().get(path, HTTP_HOST=host, HTTP_AUTHORIZATION=f"Bearer {STATIC}")
        )
        return asyncio.run(result) if mode == "async" else result

    refused = call("/v1/models", "evil.example")
    assert refused.status_code == 400 and refused["Content-Type"] == "application/json"
    assert json.loads(refused.content)["error"] == {
        "message": "The Host header names a host this server does not serve.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_host",
    }
    assert call("/v1/models", "gateway.example").status_code == 200
    # Elsewhere the project's own pages decide (Django's HTML 400, from CommonMiddleware).
    assert call("/elsewhere", "evil.example").status_code == 200


def test_a_gateway_error_in_a_view_becomes_openai_json(client):
    middleware = EngineErrorMiddleware(lambda r: HttpResponse())
    response = middleware.process_exception(RequestFactory().get("/x"), EngineDeadError("gone"))
    assert response is not None and response.status_code == 503
    assert json.loads(response.content)["error"] == {
        "message": "gone",
        "type": "server_error",
        "param": None,
        "code": "engine_unavailable",
    }
    assert middleware.process_exception(RequestFactory().get("/x"), ValueError()) is None


def test_a_django_reply_never_streamed_is_still_closed():
    """A middleware may replace the relay's response: Django then only closes it."""
    from llm_gateway.core.request import Reply
    from llm_gateway.runtime import Runtime
    from llm_gateway.views import _response

    closed = []

    async def main() -> None:
        reply = Reply(
            200,
            [(b"content-type", b"text/event-stream")],
            content=b"x",
            on_close=lambda: closed.append(True),
        )
        response = _response(reply, Runtime())
        await asyncio.get_running_loop().run_in_executor(None, response.close)  # Django's thread
        for _ in range(5):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert closed == [True]
