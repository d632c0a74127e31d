"""Both faces end to end: fail closed, a project's own guarded view, and any ASGI server."""

from __future__ import annotations

import signal
import sys

import httpx
import openai
import pytest

from . import servers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


MISCONFIGURED = ["/v1/chat", "/api", "/llm/v1/chat"]


def _assert_closed(api: str, fake_requests, api_key: str) -> None:
    for method, path in [("GET", "/models"), ("POST", "/embeddings"), ("GET", "/files/x")]:
        r = httpx.request(method, api + path, json={"model": "m"})
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == "missing_api_key"
        assert r.headers["www-authenticate"] == "Bearer"
    assert fake_requests() == []  # nothing reached the engine
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=api, api_key="sk-wrong", max_retries=0).models.list()
    assert fake_requests() == []
    client = openai.OpenAI(base_url=api, api_key=api_key, max_retries=0)
    assert [m.id for m in client.models.list()] == ["fake-model"]


@pytest.mark.parametrize("face", ["fast", "django"])
def test_an_unguarded_relay_does_not_start(gateway_env, server_logs, face):
    env = {**gateway_env, "LLM_GATEWAY_AUTH_PREFIXES": "/v1/chat"}
    server = servers.daphne(server_logs, env, face=face)
    with pytest.raises(RuntimeError, match="exited with 1 before listening"):
        server.start()
    assert "llm_gateway.E004" in server.output()


@pytest.mark.parametrize("prefixes", MISCONFIGURED)
def test_a_misconfigured_prefix_never_opens_the_django_faces_relay(
    gateway_env, server_logs, fake_requests, api_key, prefixes
):
    """LLM_GATEWAY_AUTH_PREFIXES=/v1/chat once let GET /v1/models reach the engine with the
    gateway's own key and no client key at all. Plain daphne runs no checks: the relay
    itself refuses."""
    port = servers.free_port()
    argv = [sys.executable, "-m", "daphne", "-p", str(port), "project.asgi_django:application"]
    env = {
        **gateway_env,
        "DJANGO_SETTINGS_MODULE": "project.settings_django",
        "LLM_GATEWAY_AUTH_PREFIXES": prefixes,
    }
    log = server_logs / f"daphne-plain-{port}.log"
    server = servers.Server(argv, port, env, log, "/llm/v1").start()
    try:
        _assert_closed(server.api, fake_requests, api_key)
    finally:
        server.stop()


@pytest.mark.parametrize("prefixes", MISCONFIGURED)
def test_a_misconfigured_prefix_never_opens_the_fast_paths_relay(
    upstream, fake_requests, api_key, prefixes
):
    """The same on the fast path, whose application refuses to be built so configured: the
    stack is put together here by hand to show the relay's own refusal."""
    import asyncio

    from django.test import override_settings

    from llm_gateway.asgi.auth import AuthMiddleware
    from llm_gateway.asgi.errors import ErrorMiddleware
    from llm_gateway.asgi.request_id import RequestIdMiddleware
    from llm_gateway.asgi.router import GatewayRouter
    from llm_gateway.runtime import get_runtime

    from .asgi_helpers import call, http_scope, ok_app

    router = GatewayRouter(ok_app, get_runtime)
    app = RequestIdMiddleware(ErrorMiddleware(AuthMiddleware(router, get_runtime)))
    settings = {
        "LLM_GATEWAY_AUTH_PREFIXES": prefixes,
        "LLM_GATEWAY_UPSTREAM_URL": upstream.url + "/v1",
    }

    async def run() -> list[int]:
        statuses = []
        for path, headers in [
            ("/v1/models", []),
            ("/v1/embeddings", []),
            ("/v1/models", [(b"authorization", b"Bearer sk-wrong")]),
            ("/v1/models", [(b"authorization", f"Bearer {api_key}".encode())]),
        ]:
            status, _, body, _ = await call(app, http_scope(path, headers=headers))
            statuses.append(status)
        await get_runtime().aclose()
        return statuses

    with override_settings(**settings):
        assert asyncio.run(run()) == [401, 401, 401, 200]
    seen = fake_requests()
    assert [r["path"] for r in seen] == ["/v1/models"]  # the one with a valid key


def test_a_project_view_under_api_key_required(face_gateway, api_key):
    r = httpx.get(face_gateway.url + "/whoami")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    r = httpx.get(face_gateway.url + "/whoami", headers={"Authorization": "Bearer sk-nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(
        face_gateway.url + "/whoami",
        headers={"Authorization": f"Bearer {api_key}", "X-Request-Id": "mine-123"},
    )
    assert r.status_code == 200
    assert r.json()["key"]["name"].startswith("test-")
    assert r.json()["key"]["prefix"] == api_key.split("-")[1]
    assert r.json()["request_id"] == "mine-123" and r.headers["x-request-id"] == "mine-123"
    assert api_key not in r.text


def test_the_django_face_answers_only_where_it_is_mounted(django_gateway, api_key):
    auth = {"Authorization": f"Bearer {api_key}"}
    assert httpx.get(django_gateway.url + "/v1/models", headers=auth).status_code == 404
    assert httpx.get(django_gateway.url + "/llm/v1/models", headers=auth).status_code == 200
    assert httpx.get(django_gateway.url + "/llm/health").json()["status"] == "ok"


def test_uvicorn_serves_the_gateway_and_stops_cleanly(gateway_env, server_logs, api_key):
    """Any ASGI server with lifespan: start-up, a relayed stream, SIGTERM -> clean exit."""
    port = servers.free_port()
    argv = [sys.executable, "-m", "uvicorn", "--port", str(port), "project.asgi:application"]
    env = {"DJANGO_SETTINGS_MODULE": "project.settings", **gateway_env}
    env["LLM_GATEWAY_REQUEST_LOG"] = "true"
    server = servers.Server(argv, port, env, server_logs / f"uvicorn-{port}.log").start()
    try:
        client = openai.OpenAI(base_url=server.api, api_key=api_key, max_retries=0)
        stream = client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream).startswith("Hello")
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        # uvicorn (0.29 and later) shuts down gracefully, then raises the signal it caught
        # again with its default action: the exit status says "ended by SIGTERM", after the
        # lines below, not "killed" before them.
        assert server.process.wait(timeout=15) == -signal.SIGTERM
        output = server.output()
        assert "Application startup complete" in output
        assert "Application shutdown complete" in output
        # gateway.shutdown() ran: watchdog stopped, key store stopped, upstream sessions closed
        assert "gateway stopped: watchdogs, key store and upstream sessions closed" in output
        assert "request log written (1 rows, 0 dropped)" in output
        assert "Unclosed client session" not in output and "Traceback" not in output
    finally:
        server.stop()


@pytest.mark.parametrize("face", ["fast", "django"])
def test_settings_that_cannot_be_read_stop_the_start_up(gateway_env, server_logs, face):
    env = {**gateway_env, "LLM_GATEWAY_READ_TIMEOUT": "soon", "LLM_GATEWAY_LOG_RESPONSES": "maybe"}
    server = servers.daphne(server_logs, env, face=face)
    with pytest.raises(RuntimeError, match="exited with 1 before listening"):
        server.start()  # nothing listens: the checks run before the port is bound
    output = server.output()
    assert "not starting, the settings have errors" in output
    assert "LLM_GATEWAY_READ_TIMEOUT" in output and "LLM_GATEWAY_LOG_RESPONSES" in output
    assert "llm_gateway.E003" in output


def test_a_host_the_django_face_does_not_serve_is_an_openai_error_on_its_api(
    django_gateway, api_key
):
    auth = {"Authorization": f"Bearer {api_key}", "Host": "evil.example"}
    r = httpx.get(django_gateway.api + "/models", headers=auth)
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "invalid_host" and r.json()["error"]["param"] is None
    assert "evil.example" not in r.text
    r = httpx.get(django_gateway.url + "/whoami", headers=auth)  # not the API: Django's page
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]
