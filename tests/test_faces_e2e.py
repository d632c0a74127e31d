"""Both faces end to end: fail closed, a project's own guarded view, and any ASGI server."""

from __future__ import annotations

import signal
import sys

import httpx
import openai
import pytest

from . import servers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("face", ["fast", "django"])
@pytest.mark.parametrize("prefixes", ["/v1/chat", "/api", "/llm/v1/chat"])
def test_a_misconfigured_prefix_never_opens_the_relay(
    gateway_env, server_logs, fake_requests, api_key, face, prefixes
):
    """LLM_GATEWAY_AUTH_PREFIXES=/v1/chat once let GET /v1/models reach the engine with the
    gateway's own key and no client key at all."""
    env = {**gateway_env, "LLM_GATEWAY_AUTH_PREFIXES": prefixes}
    server = servers.daphne(server_logs, env, face=face).start()
    try:
        for method, path in [("GET", "/models"), ("POST", "/embeddings"), ("GET", "/files/x")]:
            r = httpx.request(method, server.api + path, json={"model": "m"})
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "missing_api_key"
            assert r.headers["www-authenticate"] == "Bearer"
        assert fake_requests() == []  # nothing reached the engine
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.api, api_key="sk-wrong", max_retries=0).models.list()
        assert fake_requests() == []
        client = openai.OpenAI(base_url=server.api, api_key=api_key, max_retries=0)
        assert [m.id for m in client.models.list()] == ["fake-model"]
    finally:
        server.stop()


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
        assert "Unclosed client session" not in output and "Traceback" not in output
    finally:
        server.stop()
