"""Through the gateway to a real engine we did not write: llama.cpp's server with SmolLM2-135M.

CI installs requirements-local-engine.txt (scripts/test.sh), so nothing here is skipped on CI;
elsewhere the tests are skipped, with the reason, if the optional packages are missing.
"""

from __future__ import annotations

import os

import httpx
import openai
import pytest

from llm_gateway.local_engine import MODEL_ALIAS, LocalEngineUnavailable, engine_argv

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

try:
    engine_argv("127.0.0.1", 0)
except LocalEngineUnavailable as exc:
    if os.environ.get("CI"):
        raise  # CI must run these: a missing install step is a failure there
    pytestmark.append(pytest.mark.skip(reason=str(exc)))

WATCHDOG = {"LLM_GATEWAY_WATCHDOG_INTERVAL": "0.5", "LLM_GATEWAY_WATCHDOG_FAILURES": "2"}
ASK = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def engine(server_logs):
    server = servers.local_engine(server_logs).start()
    servers.wait_for_http(server.url + "/v1/models")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llama_gateway(engine, gateway_env, server_logs):
    env = {
        **gateway_env,
        **WATCHDOG,
        "LLM_GATEWAY_UPSTREAM_URL": engine.url + "/v1",
        "LLM_GATEWAY_READ_TIMEOUT": "120",
        "LLM_GATEWAY_LOG_RESPONSES": "true",
        # llama-cpp-python answers 400 to an X-Request-Id that is not a UUID.
        "LLM_GATEWAY_UPSTREAM_REQUEST_ID_HEADER": "X-Gateway-Request-Id",
    }
    server = servers.daphne(server_logs, env).start()
    yield server
    server.stop()


@pytest.fixture
def client(llama_gateway, api_key):
    with openai.OpenAI(
        base_url=llama_gateway.url + "/v1", api_key=api_key, max_retries=0, timeout=120
    ) as client:
        yield client


def test_models_lists_smollm2(client):
    assert [m.id for m in client.models.list()] == [MODEL_ALIAS]


def test_chat_completion(client):
    completion = client.chat.completions.create(
        model=MODEL_ALIAS, messages=ASK, max_tokens=16, temperature=0
    )
    assert completion.choices[0].message.content.strip()
    assert completion.usage.completion_tokens > 0


def test_streamed_content_equals_the_plain_answer(client):
    options = {
        "model": MODEL_ALIAS,
        "messages": ASK,
        "max_tokens": 24,
        "temperature": 0,
        "seed": 42,
    }
    plain = client.chat.completions.create(**options).choices[0].message.content
    stream = client.chat.completions.create(**options, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert plain and streamed == plain


def test_usage_asked_of_a_stream_comes_through_the_engine_sends_none(client, llama_gateway):
    """llama-cpp-python ignores ``include_usage``; the gateway sends OpenAI's final usage
    chunk from its meter (issue 23), before ``[DONE]``."""
    stream = client.chat.completions.create(
        model=MODEL_ALIAS,
        messages=ASK,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Request-Id": "llama-usage-1"},
    )
    chunks = list(stream)
    *answer, last = chunks
    assert answer and all(c.usage is None for c in answer)
    assert last.choices == [] and last.usage is not None
    content = [c for c in answer if c.choices and c.choices[0].delta.content]
    assert last.usage.completion_tokens == len(content) and last.usage.prompt_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    (line,) = wait_until(
        lambda: [
            line
            for line in llama_gateway.output().splitlines()
            if "llama-usage-1" in line and "stream end=" in line
        ]
    )
    assert "stream end=done" in line
    # llama-cpp-python's server frames events with CRLF: the log still has what the client got
    received = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert received and f"content={received}" in llama_gateway.output()


def test_invalid_request_is_a_clean_openai_error(client):
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=MODEL_ALIAS, messages="not a list", max_tokens="many")  # type: ignore[arg-type]
    error = info.value.body
    assert set(error) >= {"message", "type", "param", "code"}
    # Refused by the gateway as OpenAI would (llama-cpp-python answered it with a 500, which
    # the client saw as a 502 from a broken engine): a 400 naming the field.
    assert info.value.status_code == 400 and isinstance(info.value, openai.BadRequestError)
    assert (error["param"], error["code"]) == ("messages", "invalid_type")
    assert "'messages'" in error["message"]


def test_what_the_engine_refuses_is_its_own_clean_error(client):
    """A request of the right shape the engine still refuses: its error, no traceback."""
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model=MODEL_ALIAS,
            messages=ASK,
            logit_bias={"1": "not a number"},  # type: ignore[dict-item]
        )
    error = info.value.body
    assert set(error) >= {"message", "type", "param", "code"}
    message = error["message"]
    assert "validation error" in message
    for leak in ("Traceback", 'File "', "site-packages", "/work/", ".py", "line 3"):
        assert leak not in message, message
    # llama.cpp answers a validation error with HTTP 500: an engine failure, so 502 here.
    assert info.value.status_code == 502 and isinstance(info.value, openai.InternalServerError)


def test_unknown_engine_route_is_a_404(client, llama_gateway, api_key):
    r = httpx.get(
        llama_gateway.url + "/v1/no-such-thing", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert r.status_code == 404 and r.json()["error"]["message"] == "Not Found"


def test_engine_stop_and_restart(engine, llama_gateway, api_key, client):
    auth = {"Authorization": f"Bearer {api_key}"}
    assert httpx.get(llama_gateway.url + "/health").status_code == 200
    engine.stop()
    dead = wait_until(lambda: httpx.get(llama_gateway.url + "/health").status_code == 503, 30)
    assert dead, "the watchdog did not see the engine die"
    r = httpx.post(
        llama_gateway.url + "/v1/chat/completions",
        json={"model": MODEL_ALIAS, "messages": ASK},
        headers=auth,
    )
    assert r.status_code == 503 and r.json()["error"]["code"] == "engine_unavailable"
    with pytest.raises(openai.InternalServerError):
        client.models.list()
    engine.start()  # same port; daphne keeps running
    servers.wait_for_http(engine.url + "/v1/models")
    back = wait_until(lambda: httpx.get(llama_gateway.url + "/health").status_code == 200, 30)
    assert back, "the watchdog did not see the engine come back"
    assert client.chat.completions.create(model=MODEL_ALIAS, messages=ASK, max_tokens=4).choices


def test_llama_cpps_usage_in_the_request_log(engine, gateway_env, server_logs, api_key):
    """What llama-cpp-python's server reports: usage in plain answers, none in streams (even
    when asked for): there the request log counts the content events it relayed."""
    from llm_gateway.models import RequestLog

    env = {
        **gateway_env,
        "LLM_GATEWAY_UPSTREAM_URL": engine.url + "/v1",
        "LLM_GATEWAY_READ_TIMEOUT": "120",
        "LLM_GATEWAY_UPSTREAM_REQUEST_ID_HEADER": "X-Gateway-Request-Id",
        "LLM_GATEWAY_REQUEST_LOG": "true",
    }
    server = servers.daphne(server_logs, env).start()
    try:
        client = openai.OpenAI(base_url=server.api, api_key=api_key, max_retries=0, timeout=120)
        options = {"model": MODEL_ALIAS, "messages": ASK, "max_tokens": 8, "temperature": 0}
        plain = client.chat.completions.create(
            **options, extra_headers={"X-Request-Id": "llama-usage-plain"}
        )
        chunks = list(
            client.chat.completions.create(
                **options, stream=True, extra_headers={"X-Request-Id": "llama-usage-stream"}
            )
        )
        assert all(c.usage is None for c in chunks)  # the gateway asked; llama.cpp sent none
        rows = wait_until(
            lambda: (
                {
                    r.request_id: r
                    for r in RequestLog.objects.filter(request_id__startswith="llama-usage-")
                }
                if RequestLog.objects.filter(request_id__startswith="llama-usage-").count() == 2
                else None
            )
        )
        assert rows, "no request log rows"
        row = rows["llama-usage-plain"]
        assert row.usage_source == "engine"
        assert (row.prompt_tokens, row.completion_tokens) == (
            plain.usage.prompt_tokens,
            plain.usage.completion_tokens,
        )
        row = rows["llama-usage-stream"]
        assert row.usage_source == "counted" and row.prompt_tokens > 0  # estimated
        content = [c for c in chunks if c.choices and c.choices[0].delta.content]
        assert row.completion_tokens == len(content)
    finally:
        server.stop()
