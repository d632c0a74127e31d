"""Usage accounting and the request log end to end: openai client -> daphne -> fake engine,
rows read back from the database the gateway writes to."""

from __future__ import annotations

import json
import random
import signal
import socket

import httpx
import openai
import pytest

from llm_gateway.models import RequestLog, UsageDaily

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi there, engine"}]}
PROMPT_ESTIMATE = 4  # "hi there, engine": 16 characters, 4 per token


LOGGED = {"LLM_GATEWAY_REQUEST_LOG": "true"}


@pytest.fixture(scope="module", params=["fast", "django"])
def gateway(request, gateway_env, server_logs):
    """Each face, with the request log on (the shared gateways have it off)."""
    server = servers.daphne(server_logs, {**gateway_env, **LOGGED}, face=request.param).start()
    yield server
    server.stop()


def record_of(request_id: str, timeout: float = 5.0) -> RequestLog:
    row = wait_until(lambda: RequestLog.objects.filter(request_id=request_id).first(), timeout)
    assert row is not None, f"no request log row for {request_id}"
    return row


def sdk(gateway, api_key, **kwargs):
    return openai.OpenAI(base_url=gateway.api, api_key=api_key, max_retries=0, **kwargs)


def test_non_streamed_answers_carry_the_engines_usage(gateway, api_key):
    client = sdk(gateway, api_key)
    client.chat.completions.create(**CHAT, extra_headers={"X-Request-Id": "u-chat"})
    client.embeddings.create(model="fake-model", input="x", extra_headers={"X-Request-Id": "u-emb"})
    chat, emb = record_of("u-chat"), record_of("u-emb")
    assert (chat.prompt_tokens, chat.completion_tokens, chat.usage_source) == (7, 5, "engine")
    assert (chat.status, chat.stream, chat.ending, chat.model) == (200, False, "done", "fake-model")
    assert chat.key_name.startswith("test-") and chat.client == "127.0.0.1"
    assert chat.duration_ms > 0 and chat.ttfb_ms > 0 and chat.ttft_ms is None
    assert (emb.prompt_tokens, emb.completion_tokens, emb.usage_source) == (3, 0, "engine")


def test_a_stream_that_asked_for_usage_gets_it_as_the_engine_sent_it(gateway, api_key):
    stream = sdk(gateway, api_key).chat.completions.create(
        **CHAT,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Request-Id": "u-asked"},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    row = record_of("u-asked")
    assert (row.prompt_tokens, row.completion_tokens, row.usage_source) == (7, 5, "engine")
    assert row.stream and row.ending == "done" and 0 < row.ttfb_ms <= row.ttft_ms


def test_the_usage_the_gateway_asked_for_is_withheld_byte_for_byte(
    gateway, upstream, api_key, fake_requests
):
    body = json.dumps({**CHAT, "stream": True}).encode()
    headers = {"Content-Type": "application/json", "X-Fake-Chunks": "9"}
    direct = httpx.post(upstream.url + "/v1/chat/completions", content=body, headers=headers)
    fake_requests()  # forget the direct request
    httpx.post(upstream.url + "/_fake/reset")
    auth = {**headers, "Authorization": f"Bearer {api_key}", "X-Request-Id": "u-withheld"}
    via = httpx.post(gateway.api + "/chat/completions", content=body, headers=auth)
    assert b'"usage"' not in direct.content  # what the client would get without the gateway
    assert via.content == direct.content  # ids are fixed in the fake engine: no normalising
    (seen,) = fake_requests()
    assert json.loads(seen["body"])["stream_options"] == {"include_usage": True}
    row = record_of("u-withheld")
    assert (row.prompt_tokens, row.completion_tokens, row.usage_source) == (7, 9, "engine")


def test_an_engine_without_usage_is_counted_and_estimated(gateway, api_key):
    client = sdk(gateway, api_key, default_headers={"X-Fake-No-Usage": "1", "X-Fake-Chunks": "6"})
    list(client.chat.completions.create(**CHAT, stream=True, extra_headers={"X-Request-Id": "u-c"}))
    client.chat.completions.create(**CHAT, extra_headers={"X-Request-Id": "u-e"})
    counted, estimated = record_of("u-c"), record_of("u-e")
    assert (counted.completion_tokens, counted.usage_source) == (6, "counted")
    assert counted.prompt_tokens == PROMPT_ESTIMATE
    assert estimated.usage_source == "estimated" and estimated.prompt_tokens == PROMPT_ESTIMATE
    # "Hello wörld 🙂 ünïcode text and" is 30 characters: 8 tokens at 4 a token
    assert estimated.completion_tokens == 8


def _raw_stream(gateway, api_key, request_id, extra=""):
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    body = json.dumps({**CHAT, "stream": True}).encode()
    sock.sendall(
        f"POST {gateway.api_path}/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {api_key}\r\nX-Request-Id: {request_id}\r\n{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def _content_events(data: bytes) -> int:
    count = 0
    for line in data.split(b"\n"):
        if line.startswith(b"data: {"):
            choices = json.loads(line[6:]).get("choices") or [{}]
            count += bool(choices[0].get("delta", {}).get("content"))
    return count


def test_disconnects_at_random_points_charge_what_the_client_received(gateway, api_key):
    rng = random.Random(11)
    for i in range(5):
        wanted = rng.randint(1, 12)
        request_id = f"u-disc-{gateway.api_path.count('/')}-{i}"
        sock = _raw_stream(
            gateway, api_key, request_id, "X-Fake-Chunks: 60\r\nX-Fake-Delay-Ms: 60\r\n"
        )
        received = b""
        while _content_events(received.rsplit(b"\n\n", 1)[0]) < wanted:
            received += sock.recv(65536)
        sock.close()  # the next event is 60 ms away: the gateway sees the close first
        row = record_of(request_id)
        assert row.ending == "client_disconnected"
        assert row.usage_source == "counted"  # the engine's usage event never came
        assert row.completion_tokens == _content_events(received.rsplit(b"\n\n", 1)[0] + b"\n\n")


def test_an_error_mid_stream_keeps_the_tokens_relayed(gateway, api_key):
    headers = {"X-Fake-Chunks": "6", "X-Fake-Abort-After": "3", "X-Request-Id": "u-err"}
    with pytest.raises(openai.APIError):
        list(
            sdk(gateway, api_key, default_headers=headers).chat.completions.create(
                **CHAT, stream=True
            )
        )
    row = record_of("u-err")
    assert row.ending == "error:upstream_error" and row.completion_tokens == 3
    engine_error = {"X-Fake-Status": "400", "X-Request-Id": "u-400"}
    with pytest.raises(openai.BadRequestError):
        sdk(gateway, api_key, default_headers=engine_error).chat.completions.create(**CHAT)
    row = record_of("u-400")
    assert (row.status, row.ending, row.completion_tokens) == (400, "error:fake_code", None)


def test_rollups_follow_the_log_and_usage_report_reads_them(gateway, api_key):
    from django.core.management import call_command

    client = sdk(gateway, api_key)
    for i in range(3):
        client.chat.completions.create(**CHAT, extra_headers={"X-Request-Id": f"u-r{i}"})
    record_of("u-r2")
    key = RequestLog.objects.get(request_id="u-r2").key_name
    rollup = wait_until(lambda: UsageDaily.objects.filter(key_name=key, requests__gte=3).first())
    assert rollup is not None and rollup.prompt_tokens == 21 and rollup.completion_tokens == 15

    import io

    out = io.StringIO()
    call_command("usage_report", "--key", key, "--json", stdout=out)
    assert json.loads(out.getvalue()) == [
        {
            "key": key,
            "model": "fake-model",
            "requests": 3,
            "prompt_tokens": 21,
            "completion_tokens": 15,
            "errors": 0,
            "cost": "0.000000",
            "unpriced": 3,  # no price book here
        }
    ]
    out = io.StringIO()
    call_command("usage_report", "--requests", "2", "--json", stdout=out)
    last = json.loads(out.getvalue())
    assert [r["request_id"] for r in last] == ["u-r2", "u-r1"]
    for field in (
        "request_id",
        "key",
        "model",
        "status",
        "stream",
        "prompt_tokens",
        "completion_tokens",
        "usage_source",
        "ending",
        "ttft_ms",
        "duration_ms",
    ):
        assert field in last[0]


STATIC = "sk-static-request-log-test-0123456789"


def test_a_database_outage_blocks_nothing_and_counts_what_it_drops(gateway_env, server_logs):
    env = {
        **gateway_env,
        **LOGGED,
        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none",  # a closed port
        "LLM_GATEWAY_API_KEYS": STATIC,
        "LLM_GATEWAY_REQUEST_LOG_QUEUE": "5",
    }
    server = servers.daphne(server_logs, env).start()
    try:
        client = sdk(server, STATIC)
        for _ in range(20):  # none waits on the database (each within the client's timeout)
            assert client.models.list().data[0].id == "fake-model"
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0
        output = server.output()
        assert output.count("request log queue full (5 rows waiting)") == 1
        assert output.count("request log unwritable") == 1
        assert "request log: 5 rows not written at shutdown" in output
        assert "request log written (0 rows, 15 dropped)" in output
    finally:
        server.stop()


@pytest.mark.parametrize("face", ["fast", "django"])
def test_the_queue_is_written_at_shutdown(gateway_env, server_logs, api_key, face):
    env = {**gateway_env, **LOGGED, "LLM_GATEWAY_REQUEST_LOG_BATCH": "1000"}
    server = servers.daphne(server_logs, env, face=face).start()
    try:
        client = sdk(server, api_key)
        for i in range(4):
            client.models.list(extra_headers={"X-Request-Id": f"u-shut-{i}"})
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)  # within the second before the first write
        assert server.process.wait(timeout=20) == 0
        assert RequestLog.objects.filter(request_id__startswith="u-shut-").count() == 4
    finally:
        server.stop()


def test_the_request_log_can_be_turned_off(gateway_env, server_logs, api_key):
    server = servers.daphne(server_logs, {**gateway_env, "LLM_GATEWAY_REQUEST_LOG": "false"})
    server.start()
    try:
        sdk(server, api_key).models.list(extra_headers={"X-Request-Id": "u-off"})
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0
        assert not RequestLog.objects.filter(request_id="u-off").exists()
    finally:
        server.stop()


def test_the_responses_api_usage_plain_and_streamed(gateway, api_key):
    client = sdk(gateway, api_key, default_headers={"X-Fake-Chunks": "6"})
    plain = client.responses.create(
        model="fake-model", input="hi", extra_headers={"X-Request-Id": "u-resp"}
    )
    assert plain.usage is not None and plain.usage.output_tokens == 6
    events = list(
        client.responses.create(
            model="fake-model", input="hi", stream=True, extra_headers={"X-Request-Id": "u-resp-s"}
        )
    )
    assert events[-1].type == "response.completed"  # the client's own: nothing withheld here
    for request_id in ("u-resp", "u-resp-s"):
        row = record_of(request_id)
        assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (9, 6, 4)
        assert row.usage_source == "engine", request_id


@pytest.fixture(scope="module")
def continuous_gateway(gateway_env, server_logs):
    env = {**gateway_env, **LOGGED, "LLM_GATEWAY_UPSTREAM_CONTINUOUS_USAGE": "true"}
    server = servers.daphne(server_logs, env).start()
    yield server
    server.stop()


def test_continuous_usage_makes_a_disconnect_exact_and_is_stripped(
    continuous_gateway, api_key, fake_requests
):
    gateway = continuous_gateway
    stream = sdk(gateway, api_key, default_headers={"X-Fake-Chunks": "5"})
    chunks = list(
        stream.chat.completions.create(
            **CHAT, stream=True, extra_headers={"X-Request-Id": "u-cont"}
        )
    )
    assert all(c.usage is None for c in chunks)  # the client asked for none: it got none
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello wörld 🙂 ünïcode text"
    )
    options = json.loads(fake_requests()[-1]["body"])["stream_options"]
    assert options == {"include_usage": True, "continuous_usage_stats": True}
    assert record_of("u-cont").usage_source == "engine"
    sock = _raw_stream(
        gateway, api_key, "u-cont-left", "X-Fake-Chunks: 60\r\nX-Fake-Delay-Ms: 60\r\n"
    )
    received = b""
    while _content_events(received.rsplit(b"\n\n", 1)[0]) < 4:
        received += sock.recv(65536)
    sock.close()
    assert b'"usage"' not in received
    row = record_of("u-cont-left")
    assert row.ending == "client_disconnected" and row.usage_source == "engine"
    assert row.completion_tokens == _content_events(received.rsplit(b"\n\n", 1)[0] + b"\n\n")


MESSAGES = {
    "model": "fake-model",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}


def test_the_messages_api_is_metered_from_its_own_usage(gateway, api_key):
    """Anthropic's /v1/messages (vLLM serves it): the answer's usage, or for a stream its
    message_start and message_delta events, passed through untouched."""
    headers = {"Authorization": f"Bearer {api_key}"}
    plain = httpx.post(
        gateway.api + "/messages", json=MESSAGES, headers={**headers, "X-Request-Id": "u-msg"}
    )
    assert plain.status_code == 200 and plain.json()["usage"] == {
        "input_tokens": 10,
        "output_tokens": 100,
    }
    with httpx.stream(
        "POST",
        gateway.api + "/messages",
        json={**MESSAGES, "stream": True},
        headers={**headers, "X-Request-Id": "u-msg-s"},
    ) as streamed:
        text = streamed.read().decode()
    assert text.rstrip().endswith('data: {"type": "message_stop"}')  # byte for byte
    for request_id, stream in (("u-msg", False), ("u-msg-s", True)):
        row = record_of(request_id)
        assert (row.prompt_tokens, row.completion_tokens, row.usage_source) == (10, 100, "engine")
        assert (row.stream, row.ending, row.model) == (stream, "done", "fake-model")
    assert record_of("u-msg-s").ttft_ms is not None  # its first text_delta


def test_a_token_budget_charges_messages_their_real_usage(gateway):
    """Each /v1/messages request uses 110 tokens and reserves its max_tokens (100) plus the
    prompt: a 5,000-token budget serves 40 of them (it served 4 when these requests were
    charged the default reservation, 1,024 and more, as an unread path)."""
    from llm_gateway.models import ApiKey

    _, key = ApiKey.create(f"msg-budget-{random.getrandbits(32):x}", token_budget=5000)
    headers = {"Authorization": f"Bearer {key}"}
    answers = [
        httpx.post(gateway.api + "/messages", json=MESSAGES, headers=headers) for _ in range(40)
    ]
    assert [a.status_code for a in answers] == [200] * 40, [
        a.text for a in answers if a.status_code != 200
    ][:1]
