"""Logging end to end: daphne's whole output, captured, with response logging on."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

STATIC_KEY = "static-logging-key-0123456789"


@pytest.fixture
def logged_gateway(gateway_env, server_logs):
    env = {
        **gateway_env,
        "LLM_GATEWAY_LOG_RESPONSES": "true",
        "LLM_GATEWAY_LOG_MAX_CHARS": "30",
        "LLM_GATEWAY_LOG_FORMAT": "json",
        "LLM_GATEWAY_DISABLE_ACCESS_LOG_FOR_ENDPOINTS": " /health, ",
        "LLM_GATEWAY_API_KEYS": STATIC_KEY,
    }
    server = servers.daphne(server_logs, env)
    server.argv.insert(server.argv.index("-b"), "-v")
    server.argv.insert(server.argv.index("-b"), "0")
    server.start()
    yield server
    server.stop()


def lines_of(server):
    out = []
    for line in server.output().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"raw": line})
    return out


def test_logs_carry_ids_content_and_no_keys(logged_gateway, api_key):
    base = logged_gateway.url + "/v1"
    client = openai.OpenAI(base_url=base, api_key=api_key, max_retries=0)
    stream = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers={"X-Request-Id": "req-stream-1", "X-Fake-Chunks": "3"},
    )
    received = "".join(c.choices[0].delta.content or "" for c in stream)
    long_stream = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers={"X-Request-Id": "req-stream-2", "X-Fake-Chunks": "12"},
        stream_options={"include_usage": True},
    )
    long_received = "".join(c.choices[0].delta.content or "" for c in long_stream if c.choices)
    static = openai.OpenAI(base_url=base, api_key=STATIC_KEY, max_retries=0)
    static.models.list(extra_headers={"X-Request-Id": "req-models-3"})
    httpx.get(logged_gateway.url + "/health", headers={"X-Request-Id": "req-health-4"})
    httpx.get(
        base + "/models",
        headers={"Authorization": "Bearer sk-wrong-key-in-log-test", "X-Request-Id": "req-401-5"},
    )
    wait_until(
        lambda: '"req-401-5"' in logged_gateway.output() or "req-401-5]" in logged_gateway.output()
    )
    output = logged_gateway.output()
    lines = lines_of(logged_gateway)

    # No key of any kind, anywhere.
    for secret in (
        api_key,
        api_key.split("-", 2)[2],
        STATIC_KEY,
        "sk-upstream-secret-never-shown",
        "sk-wrong-key-in-log-test",
    ):
        assert secret not in output

    ends = {
        line["request_id"]: line["message"]
        for line in lines
        if line.get("logger") == "llm_gateway.responses"
        and line["message"].startswith("stream end=")
    }
    # The client did not ask for usage: the gateway did, withheld the event from the client
    # and the log line still has it (prompt/completion/total).
    assert (
        ends["req-stream-1"]
        == "stream end=done model=fake-model chunks=4 finish_reason=stop usage=7/3/10 "
        f"content={received}"
    )
    assert len(long_received) > 30
    assert ends["req-stream-2"].endswith(f"content={long_received[:30]}...[truncated]")
    assert " chunks=14 finish_reason=stop usage=7/12/19 " in ends["req-stream-2"]
    requests = [
        line
        for line in lines
        if line.get("logger") == "llm_gateway.responses" and line["message"].startswith("request ")
    ]
    assert any(
        r["request_id"] == "req-stream-1" and "model=fake-model stream=True" in r["message"]
        for r in requests
    )
    bodies = [
        line for line in lines if line.get("message", "").startswith("response status=200 body=")
    ]
    assert any(b["request_id"] == "req-models-3" for b in bodies)

    access = [line for line in lines if line.get("logger") == "llm_gateway.access"]
    by_id = {line["request_id"]: line for line in access}
    assert (
        by_id["req-stream-1"]["status"] == 200
        and by_id["req-stream-1"]["path"] == "/v1/chat/completions"
    )
    assert by_id["req-stream-1"]["bytes"] > 0 and by_id["req-stream-1"]["duration_ms"] > 0
    assert by_id["req-401-5"]["status"] == 401
    assert "req-health-4" not in by_id  # /health is excluded from the access log
    assert not any(line.get("path") == "/health" for line in access)

    # Every line written while handling a request carries that request's id.
    gateway_lines = [
        line for line in lines if str(line.get("logger", "")).startswith("llm_gateway")
    ]
    assert gateway_lines and all(line["request_id"] not in (None, "-") for line in gateway_lines)
    # daphne's own access log is off (-v 0): no plain-text access lines.
    assert not [line for line in lines if "raw" in line and "/v1/" in line["raw"]]
