"""The authentication decision table, driven through the ASGI middleware directly."""

import asyncio
import datetime as dt
import json

import pytest
from django.test import override_settings
from django.utils import timezone

from llm_gateway.asgi.auth import AuthMiddleware
from llm_gateway.asgi.errors import ErrorMiddleware
from llm_gateway.models import ApiKey
from llm_gateway.runtime import get_runtime

from .asgi_helpers import call, http_scope, ok_app

STATIC = "static-key-0123456789abcdef"
app = ErrorMiddleware(AuthMiddleware(ok_app, get_runtime))


def request(path="/v1/models", method="GET", authorization=None, **extra):
    headers = [] if authorization is None else [(b"authorization", authorization.encode("latin-1"))]
    return asyncio.run(call(app, http_scope(path, method, headers, **extra)))


def assert_401(result, code="invalid_api_key"):
    status, headers, body, _ = result
    assert status == 401
    assert headers[b"www-authenticate"] == [b"Bearer"]
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (
        error["type"] == "authentication_error" and error["code"] == code and error["param"] is None
    )
    return error["message"]


@override_settings(LLM_GATEWAY_API_KEYS=[STATIC])
@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_api_key"),
        ("Basic dXNlcjpwYXNz", "invalid_api_key"),
        ("Bearer", "invalid_api_key"),
        ("Bearer ", "invalid_api_key"),
        ("Bearer a b", "invalid_api_key"),
        ("Token " + STATIC, "invalid_api_key"),
        ("Bearer wrong-key", "invalid_api_key"),
        ("Bearer " + STATIC + "x", "invalid_api_key"),
        ("Bearer sk-0123abcd-" + "a" * 43, "invalid_api_key"),
        ("Bearer clé", "invalid_api_key"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_rejected(authorization, code):
    message = assert_401(request(authorization=authorization), code)
    assert STATIC not in message and "wrong-key" not in message


@override_settings(LLM_GATEWAY_API_KEYS=[STATIC])
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_static_key_any_scheme_case(scheme):
    status, _, body, _ = request(authorization=f"{scheme} {STATIC}")
    assert (status, body) == (200, b"ok")
    assert ok_app.last_scope["llm_gateway.api_key"].name == "static"


@override_settings(LLM_GATEWAY_API_KEYS=f"other-key-abcdefghijkl, {STATIC}")
def test_static_keys_from_a_comma_separated_string():
    assert request(authorization=f"Bearer {STATIC}")[0] == 200


@pytest.mark.parametrize(
    ("path", "method", "guarded"),
    [
        ("/v1/models", "GET", True),
        ("/v1", "GET", True),
        ("//v1/models", "GET", True),
        ("/v1/../v1/models", "POST", True),
        ("/health/../v1/models", "GET", True),
        ("/v1/models", "OPTIONS", False),
        ("/health", "GET", False),
        ("/admin/", "GET", False),
        ("/metrics", "GET", False),
    ],
)
def test_which_requests_are_guarded(path, method, guarded):
    status = request(path, method)[0]
    assert status == (401 if guarded else 200)


def test_root_path_is_removed_before_the_check():
    assert request("/api/v1/models", root_path="/api")[0] == 401
    assert request("/api/health", root_path="/api")[0] == 200


@override_settings(LLM_GATEWAY_AUTH_PREFIXES=["/v1", "/private"])
def test_guarded_prefixes_are_a_setting():
    assert request("/private/x")[0] == 401
    assert request("/privateer")[0] == 200


@pytest.mark.django_db(transaction=True)
def test_stored_keys_active_expired_revoked():
    _, active = ApiKey.create("active")
    _, expired = ApiKey.create("expired", expires_at=timezone.now() - dt.timedelta(seconds=1))
    revoked_key, revoked = ApiKey.create("revoked")
    revoked_key.revoke()
    status, _, _, _ = request(authorization=f"Bearer {active}")
    assert status == 200
    assert ok_app.last_scope["llm_gateway.api_key"].name == "active"
    assert "expired" in assert_401(request(authorization=f"Bearer {expired}"))
    assert "revoked" in assert_401(request(authorization=f"Bearer {revoked}"))
    # Right prefix, wrong secret: the same answer as an unknown key.
    forged = active[:-4] + "AAAA"
    assert assert_401(request(authorization=f"Bearer {forged}")) == "Invalid API key."


def _websocket(path, headers):
    sent = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": path,
        "root_path": "",
        "headers": headers,
        "query_string": b"",
    }
    asyncio.run(app(scope, receive, send))
    return sent


@override_settings(LLM_GATEWAY_API_KEYS=[STATIC])
def test_websockets_under_v1_need_a_key():
    assert _websocket("/v1/realtime", []) == [{"type": "websocket.close", "code": 4401}]
    assert _websocket("/v1/realtime", [(b"authorization", f"Bearer {STATIC}".encode())]) == [
        {"type": "websocket.accept"}
    ]
    assert _websocket("/ws/other", []) == [{"type": "websocket.accept"}]
