"""Usage for whoever asks (core.fill), end to end: an engine that never reports usage (as
llama-cpp-python's server), its own tokenizer found by the gateway, the openai SDK reading
what it asked for."""

from __future__ import annotations

import httpx
import openai
import pytest

from llm_gateway.models import RequestLog

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi there, engine"}]}
PROMPT_WORDS = 3  # the fake engine's tokenizer counts words
ANSWER_WORDS = 6  # "Hello wörld 🙂 ünïcode text and" (X-Fake-Chunks: 6)
NO_USAGE = {"X-Fake-No-Usage": "1", "X-Fake-Chunks": "6"}


@pytest.fixture(scope="module")
def engine(server_logs):
    server = servers.fake_upstream(server_logs, tokenizer="llama-cpp-python").start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["fast", "django"])
def gateway(request, engine, gateway_env, server_logs):
    env = {
        **gateway_env,
        "LLM_GATEWAY_UPSTREAM_URL": engine.url + "/v1",
        "LLM_GATEWAY_REQUEST_LOG": "true",
        "LLM_GATEWAY_WATCHDOG_INTERVAL": "0.2",
    }
    server = servers.daphne(server_logs, env, face=request.param).start()
    httpx.get(server.url + ("/health" if request.param == "fast" else "/llm/health"))
    # The watchdog finds the engine's tokenizer while the replica is idle (its probe: "Hello").
    assert wait_until(lambda: "Hello" in httpx.get(engine.url + "/_fake/tokenized").json(), 30)
    yield server
    server.stop()


def record_of(request_id: str) -> RequestLog:
    row = wait_until(lambda: RequestLog.objects.filter(request_id=request_id).first(), 30)
    assert row is not None, f"no request log row for {request_id}"
    return row


def sdk(gateway, api_key):
    return openai.OpenAI(
        base_url=gateway.api, api_key=api_key, max_retries=0, default_headers=NO_USAGE
    )


def test_a_stream_that_asked_for_usage_gets_it_when_the_engine_sends_none(gateway, api_key):
    stream = sdk(gateway, api_key).chat.completions.create(
        **CHAT,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Request-Id": "fill-stream"},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (PROMPT_WORDS, 6)
    assert last.usage.total_tokens == PROMPT_WORDS + 6
    assert last.id == chunks[0].id and last.model == chunks[0].model
    assert sum(c.usage is not None for c in chunks) == 1
    row = record_of("fill-stream")  # the client, the log and the limits agree
    assert (row.prompt_tokens, row.completion_tokens, row.usage_source) == (
        PROMPT_WORDS,
        6,
        "counted",
    )
    assert row.ending == "done"


def test_a_stream_that_did_not_ask_gets_nothing_more(gateway, api_key):
    stream = sdk(gateway, api_key).chat.completions.create(
        **CHAT, stream=True, extra_headers={"X-Request-Id": "fill-none"}
    )
    assert all(chunk.usage is None for chunk in stream)
    assert record_of("fill-none").usage_source == "counted"


def test_a_completions_stream_too(gateway, api_key):
    stream = sdk(gateway, api_key).completions.create(
        model="fake-model",
        prompt="one two three four",
        stream=True,
        stream_options={"include_usage": True},
    )
    last = list(stream)[-1]
    assert last.usage is not None and last.usage.prompt_tokens == 4


def test_a_whole_answer_without_usage_gets_the_engines_count(gateway, api_key):
    answer = sdk(gateway, api_key).chat.completions.create(
        **CHAT, extra_headers={"X-Request-Id": "fill-whole"}
    )
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (
        PROMPT_WORDS,
        ANSWER_WORDS,
    )
    row = record_of("fill-whole")
    assert (row.prompt_tokens, row.completion_tokens, row.usage_source) == (
        PROMPT_WORDS,
        ANSWER_WORDS,
        "engine",
    )


def test_the_responses_api_completed_event_gets_usage(gateway, api_key):
    client = sdk(gateway, api_key)
    events = list(client.responses.create(model="fake-model", input="say it twice", stream=True))
    completed = events[-1]
    assert completed.type == "response.completed"
    usage = completed.response.usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (3, 6)
    plain = client.responses.create(model="fake-model", input="say it twice")
    assert plain.usage is not None and plain.usage.input_tokens == 3


def test_an_engine_that_sends_usage_is_relayed_as_it_sent_it(gateway, api_key):
    client = openai.OpenAI(base_url=gateway.api, api_key=api_key, max_retries=0)
    stream = client.chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}
    )
    last = list(stream)[-1]
    assert last.usage is not None and last.usage.prompt_tokens == 7  # the engine's own figure
