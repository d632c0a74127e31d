"""OpenTelemetry end to end: the openai client (sending its own ``traceparent``) -> daphne
(each face) -> the fake engine, which records the ``traceparent`` it got; the gateway's
exporters send to a real OTLP/HTTP receiver process that decodes the protobuf they put on
the wire (tests/otlp_receiver.py)."""

from __future__ import annotations

import json
import os

import httpx
import openai
import pytest

from llm_gateway.models import RequestLog
from llm_gateway.observe.tracing import names

from . import servers
from .conftest import UPSTREAM_SECRET
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi there, engine"}]}
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
EXPORT_SOON = {
    "OTEL_BSP_SCHEDULE_DELAY": "50",  # ms: the batching thread exports quickly in tests
    "OTEL_METRIC_EXPORT_INTERVAL": "300",
    "OTEL_SERVICE_NAME": "gateway-under-test",
    "LLM_GATEWAY_REQUEST_LOG": "true",
}


@pytest.fixture(scope="module")
def receiver(server_logs):
    server = servers.otlp_receiver(server_logs).start()
    yield server
    server.stop()


def traced_env(gateway_env, receiver, **extra: str) -> dict[str, str]:
    return {**gateway_env, **EXPORT_SOON, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **extra}


@pytest.fixture(scope="module", params=["fast", "django"])
def traced(request, gateway_env, receiver, server_logs):
    server = servers.daphne(server_logs, traced_env(gateway_env, receiver), face=request.param)
    yield server.start()
    server.stop()


OPEN: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients():
    """Each test's clients closed when it ends (a socket left to the collector is a
    ResourceWarning in whichever later test the collector runs)."""
    yield
    while OPEN:
        OPEN.pop().close()


def sdk(gateway, api_key):
    client = openai.OpenAI(base_url=gateway.api, api_key=api_key, max_retries=0)
    OPEN.append(client)
    return client


def all_spans(receiver) -> list[dict]:
    return httpx.get(receiver.url + "/_spans").json()


def trace_of(receiver, request_id: str, clients: int = 1) -> tuple[dict, list[dict]]:
    """The gateway SERVER span of a request and its CLIENT spans (waited for)."""

    def found():
        every = all_spans(receiver)
        server = next(
            (s for s in every if s["attributes"].get(names.GATEWAY_REQUEST_ID) == request_id),
            None,
        )
        if server is None:
            return None
        children = [s for s in every if s["parent_span_id"] == server["span_id"]]
        return (server, children) if len(children) >= clients else None

    result = wait_until(found, 10)
    assert result, f"no trace for {request_id}: {all_spans(receiver)[-4:]}"
    server, children = result
    return server, sorted(children, key=lambda s: s["attributes"][names.GATEWAY_ATTEMPT])


def engine_traceparent(fake_requests) -> str:
    return fake_requests()[-1]["headers"].get("traceparent", "")


def test_one_trace_from_the_client_through_the_gateway_into_the_engine(
    traced, receiver, api_key, fake_requests, upstream
):
    rid = f"tr-{os.urandom(4).hex()}"
    headers = {"traceparent": TRACEPARENT, "X-Request-Id": rid, "X-Fake-Cached": "3"}
    answer = sdk(traced, api_key).chat.completions.create(
        **CHAT, max_tokens=9, temperature=0.25, top_p=0.5, extra_headers=headers
    )
    server, (client,) = trace_of(receiver, rid)
    # client traceparent -> gateway SERVER -> gateway CLIENT -> what the engine received
    assert server["trace_id"] == client["trace_id"] == CLIENT_TRACE
    assert server["parent_span_id"] == CLIENT_SPAN and server["kind"] == "SERVER"
    assert client["kind"] == "CLIENT" and client["name"] == "chat fake-model"
    sent = engine_traceparent(fake_requests)
    assert sent.split("-")[1:3] == [CLIENT_TRACE, client["span_id"]], sent
    attributes = client["attributes"]
    assert attributes[names.OPERATION_NAME] == "chat"
    assert attributes[names.REQUEST_MODEL] == "fake-model"
    assert attributes[names.REQUEST_MAX_TOKENS] == 9
    assert attributes[names.REQUEST_TEMPERATURE] == 0.25 and attributes[names.REQUEST_TOP_P] == 0.5
    assert attributes[names.REQUEST_STREAM] is False
    assert attributes[names.RESPONSE_ID] == answer.id
    assert attributes[names.RESPONSE_MODEL] == answer.model
    assert attributes[names.RESPONSE_FINISH_REASONS] == ["stop"]
    assert attributes[names.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[names.SERVER_PORT] == upstream.port
    assert attributes[names.PROVIDER_NAME]  # the engine's kind, or _OTHER for the fake
    assert attributes[names.HTTP_RESPONSE_STATUS_CODE] == 200
    assert client["status"] == server["status"] == 0 and names.ERROR_TYPE not in attributes
    row = wait_until(lambda: RequestLog.objects.filter(request_id=rid).first(), 5)
    assert row is not None
    assert attributes[names.USAGE_INPUT_TOKENS] == row.prompt_tokens == 7
    assert attributes[names.USAGE_OUTPUT_TOKENS] == row.completion_tokens == 5
    assert attributes[names.USAGE_CACHE_READ_INPUT_TOKENS] == row.cached_tokens == 3
    own = server["attributes"]
    assert own[names.GATEWAY_KEY_NAME] == row.key_name and own[names.GATEWAY_KEY_ID] == row.key_id
    assert own[names.GATEWAY_ENDING] == "done" and own[names.HTTP_RESPONSE_STATUS_CODE] == 200
    assert own[names.GATEWAY_REPLICA] == row.upstream
    assert server["start"] <= client["start"] <= client["end"] <= server["end"]
    assert server["resource"]["service.name"] == "gateway-under-test"
    assert client["schema_url"] == names.SCHEMA_URL and client["scope"] == names.SCOPE
    posts = httpx.get(receiver.url + "/_posts").json()
    assert {p["content_type"] for p in posts} == {"application/x-protobuf"}


def test_without_a_traceparent_the_gateway_starts_the_trace(
    traced, receiver, api_key, fake_requests
):
    rid = f"tr-{os.urandom(4).hex()}"
    stream = sdk(traced, api_key).chat.completions.create(
        **CHAT,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Request-Id": rid},
    )
    chunks = list(stream)
    server, (client,) = trace_of(receiver, rid)
    assert server["parent_span_id"] == "" and client["trace_id"] == server["trace_id"]
    assert engine_traceparent(fake_requests).split("-")[2] == client["span_id"]
    attributes = client["attributes"]
    assert attributes[names.REQUEST_STREAM] is True
    assert attributes[names.RESPONSE_ID] == chunks[0].id
    assert attributes[names.USAGE_OUTPUT_TOKENS] == chunks[-1].usage.completion_tokens
    assert 0 < attributes[names.RESPONSE_TIME_TO_FIRST_CHUNK] < 5


def test_an_unsampled_trace_goes_on_to_the_engine_and_records_nothing(
    traced, receiver, api_key, fake_requests
):
    rid = f"tr-{os.urandom(4).hex()}"
    unsampled = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"  # the client's sampler said no
    headers = {"traceparent": unsampled, "X-Request-Id": rid}
    sdk(traced, api_key).chat.completions.create(**CHAT, extra_headers=headers)
    version, trace_id, span_id, flags = engine_traceparent(fake_requests).split("-")
    assert (trace_id, flags) == (CLIENT_TRACE, "00") and span_id != CLIENT_SPAN
    marker = f"tr-{os.urandom(4).hex()}"  # a sampled request after it, to know export ran
    sdk(traced, api_key).chat.completions.create(**CHAT, extra_headers={"X-Request-Id": marker})
    trace_of(receiver, marker)
    ids = {s["attributes"].get(names.GATEWAY_REQUEST_ID) for s in all_spans(receiver)}
    assert rid not in ids and span_id not in {s["span_id"] for s in all_spans(receiver)}


def test_no_key_and_no_content_by_default(traced, receiver, api_key):
    rid = f"tr-{os.urandom(4).hex()}"
    sdk(traced, api_key).chat.completions.create(**CHAT, extra_headers={"X-Request-Id": rid})
    server, (client,) = trace_of(receiver, rid)
    text = json.dumps(all_spans(receiver))
    assert api_key not in text and api_key.split("-")[-1] not in text
    assert UPSTREAM_SECRET not in text
    assert "hi there, engine" not in text and "wörld" not in text
    assert names.INPUT_MESSAGES not in client["attributes"]
    assert names.OUTPUT_MESSAGES not in client["attributes"]


def test_an_engine_error_is_an_error_on_both_spans(traced, receiver, api_key):
    rid = f"tr-{os.urandom(4).hex()}"
    headers = {"X-Request-Id": rid, "X-Fake-Status": "500"}
    with pytest.raises(openai.APIStatusError) as failure:
        sdk(traced, api_key).chat.completions.create(**CHAT, extra_headers=headers)
    assert failure.value.status_code == 502
    server, (client,) = trace_of(receiver, rid)
    assert client["status"] == 2 and client["attributes"][names.ERROR_TYPE] == "500"
    assert client["attributes"][names.HTTP_RESPONSE_STATUS_CODE] == 500
    assert server["status"] == 2 and server["attributes"][names.ERROR_TYPE]
    assert server["attributes"][names.HTTP_RESPONSE_STATUS_CODE] == 502


def test_a_refusal_is_a_span_without_a_try(traced, receiver, api_key):
    rid = f"tr-{os.urandom(4).hex()}"
    headers = {"X-Request-Id": rid, "X-Gateway-Priority": "no-such-class"}
    with pytest.raises(openai.BadRequestError):
        sdk(traced, api_key).chat.completions.create(**CHAT, extra_headers=headers)
    server = wait_until(
        lambda: next(
            (
                s
                for s in all_spans(receiver)
                if s["attributes"].get(names.GATEWAY_REQUEST_ID) == rid
            ),
            None,
        ),
        10,
    )
    assert server is not None, "a request refused before admission still has its span"
    assert server["attributes"][names.HTTP_RESPONSE_STATUS_CODE] == 400
    assert server["status"] == 0  # the client's error, not the server's
    assert not [s for s in all_spans(receiver) if s["parent_span_id"] == server["span_id"]]


def test_a_stream_the_client_cuts_ends_both_spans(traced, receiver, api_key, fake_requests):
    rid = f"tr-{os.urandom(4).hex()}"
    headers = {
        "Authorization": f"Bearer {api_key}",
        "X-Request-Id": rid,
        "X-Fake-Chunks": "50",
        "X-Fake-Delay-Ms": "100",
    }
    body = {**CHAT, "stream": True}
    with httpx.stream("POST", traced.api + "/chat/completions", json=body, headers=headers) as r:
        next(r.iter_raw())
    server, (client,) = trace_of(receiver, rid)
    assert server["attributes"][names.GATEWAY_ENDING] == "client_disconnected"
    assert client["attributes"][names.GATEWAY_ENDING] == "client_disconnected"
    assert server["status"] == client["status"] == 0  # the client left: nobody failed
    assert client["end"] - client["start"] < 4e9  # ended when the client left, not at 5 s
    assert wait_until(lambda: fake_requests()[-1].get("disconnected"), 5)


def test_a_realtime_session_is_one_span_with_its_usage(receiver, api_key, traced):
    if traced.api_path != "/v1":
        pytest.skip("the realtime relay is the fast face's")
    from websockets.sync.client import connect

    rid = f"rt-{os.urandom(4).hex()}"
    headers = {"Authorization": f"Bearer {api_key}", "X-Request-Id": rid}
    url = f"ws://127.0.0.1:{traced.port}/v1/realtime?model=fake-model"
    with connect(url, additional_headers=headers) as ws:
        ws.send(json.dumps({"type": "response.create"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "response.created"
        assert json.loads(ws.recv(timeout=5))["type"] == "response.done"
    server, children = trace_of(receiver, rid, clients=0)
    assert children == [] and server["name"] == "GET /realtime"
    attributes = server["attributes"]
    assert attributes[names.OPERATION_NAME] == "realtime"
    assert (attributes[names.USAGE_INPUT_TOKENS], attributes[names.USAGE_OUTPUT_TOKENS]) == (5, 7)


@pytest.fixture(scope="module")
def failing_over(gateway_env, receiver, server_logs, upstream):
    """Two replicas: one answers every request 503 (the gateway fails over), one works."""
    broken = servers.fake_upstream(server_logs).start()
    httpx.post(broken.url + "/_fake/status", json={"status": 503})
    replicas = [
        {"url": broken.url + "/v1", "models": ["fake-model"], "name": "broken"},
        {
            "url": upstream.url + "/v1",
            "models": ["fake-model"],
            "name": "working",
            "provider": "vllm",
        },
    ]
    env = traced_env(
        gateway_env,
        receiver,
        LLM_GATEWAY_UPSTREAMS=json.dumps(replicas),
        LLM_GATEWAY_ROUTING="round_robin",
    )
    server = servers.daphne(server_logs, env).start()
    yield server
    server.stop()
    broken.stop()


def test_a_failover_is_one_client_span_per_replica_tried(failing_over, receiver, api_key):
    client = sdk(failing_over, api_key)
    for _ in range(6):  # round robin: one of the first requests goes to the broken one first
        rid = f"fo-{os.urandom(4).hex()}"
        client.chat.completions.create(**CHAT, extra_headers={"X-Request-Id": rid})
        server, tries = trace_of(receiver, rid)
        if len(tries) == 2:
            break
    else:
        pytest.fail("no request was tried on the broken replica first")
    failed, served = wait_until(lambda: trace_of(receiver, rid, clients=2)[1], 5)
    assert failed["attributes"][names.GATEWAY_REPLICA] == "broken"
    assert failed["attributes"][names.ERROR_TYPE] == "503" and failed["status"] == 2
    assert served["attributes"][names.GATEWAY_REPLICA] == "working" and served["status"] == 0
    assert served["attributes"][names.PROVIDER_NAME] == "vllm"  # as configured
    assert failed["attributes"][names.PROVIDER_NAME] == "_OTHER"  # configured models: not asked
    assert failed["attributes"][names.HTTP_RESPONSE_STATUS_CODE] == 503
    assert served["attributes"][names.GATEWAY_ATTEMPT] == 2
    assert names.USAGE_OUTPUT_TOKENS in served["attributes"]
    assert names.USAGE_OUTPUT_TOKENS not in failed["attributes"]
    assert failed["end"] <= served["start"]
    assert server["status"] == 0 and server["attributes"][names.GATEWAY_REPLICA] == "working"


@pytest.fixture(scope="module")
def capturing(gateway_env, receiver, server_logs):
    """Content capture on, in front of an engine whose /models says it is llama.cpp's."""
    engine = servers.fake_upstream(server_logs, owned_by="llamacpp").start()
    env = traced_env(
        gateway_env,
        receiver,
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true",
        LLM_GATEWAY_UPSTREAM_URL=engine.url + "/v1",
    )
    server = servers.daphne(server_logs, env).start()
    yield server
    server.stop()
    engine.stop()


def test_content_only_when_opted_in(capturing, receiver, api_key):
    rid = f"cc-{os.urandom(4).hex()}"
    messages = [{"role": "system", "content": "be brief"}, *CHAT["messages"]]
    stream = sdk(capturing, api_key).chat.completions.create(
        model="fake-model", messages=messages, stream=True, extra_headers={"X-Request-Id": rid}
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    _, (client,) = trace_of(receiver, rid)
    attributes = client["attributes"]
    assert json.loads(attributes[names.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi there, engine"}]}
    ]
    assert json.loads(attributes[names.SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": "be brief"}
    ]
    (output,) = json.loads(attributes[names.OUTPUT_MESSAGES])
    assert output["parts"] == [{"type": "text", "content": text}] and text
    assert output["role"] == "assistant" and output["finish_reason"] == "stop"
    assert attributes[names.PROVIDER_NAME] == "llama.cpp"  # found in its /models
    assert api_key not in json.dumps(all_spans(receiver))


@pytest.fixture(scope="module")
def measured(gateway_env, receiver, server_logs):
    """A gateway of its own: its cumulative metrics count only this module's requests."""
    env = traced_env(gateway_env, receiver, OTEL_SERVICE_NAME="gateway-metrics")
    server = servers.daphne(server_logs, env).start()
    yield server
    server.stop()


def test_genai_metrics_with_the_conventions_buckets(measured, receiver, api_key):
    client = sdk(measured, api_key)
    for _ in range(3):
        client.chat.completions.create(**CHAT)
    stream = client.chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}
    )
    list(stream)

    def latest() -> dict[tuple[str, str], dict]:
        points: dict[tuple[str, str], dict] = {}
        for point in httpx.get(receiver.url + "/_metrics").json():
            if point["service"] != "gateway-metrics":
                continue  # another gateway's
            kind = point["attributes"].get(names.TOKEN_TYPE, "")
            stream_key = (point["name"], kind)
            if point["attributes"].get(names.REQUEST_MODEL) == "fake-model":
                points[stream_key] = point  # cumulative: the last export holds the totals
        return points

    def complete():
        points = latest()
        usage = points.get((names.CLIENT_TOKEN_USAGE, names.TOKEN_INPUT))
        return points if usage and usage["count"] == 4 else None

    points = wait_until(complete, 10)
    assert points, latest()
    inputs = points[(names.CLIENT_TOKEN_USAGE, names.TOKEN_INPUT)]
    outputs = points[(names.CLIENT_TOKEN_USAGE, names.TOKEN_OUTPUT)]
    assert (inputs["count"], inputs["sum"]) == (4, 28)
    assert (outputs["count"], outputs["sum"]) == (4, 20)
    assert inputs["bounds"] == list(names.TOKEN_USAGE_BUCKETS)
    duration = points[(names.CLIENT_OPERATION_DURATION, "")]
    assert duration["count"] == 4 and duration["bounds"] == list(names.DURATION_BUCKETS)
    first = points[(names.SERVER_TIME_TO_FIRST_TOKEN, "")]
    assert first["count"] == 1 and first["bounds"] == list(names.TIME_TO_FIRST_TOKEN_BUCKETS)
    per_token = points[(names.SERVER_TIME_PER_OUTPUT_TOKEN, "")]
    assert per_token["bounds"] == list(names.TIME_PER_OUTPUT_TOKEN_BUCKETS)
    assert inputs["unit"] == "{token}" and duration["unit"] == "s"


def test_off_means_off_whatever_the_environment_says(
    gateway_env, receiver, server_logs, api_key, fake_requests
):
    env = traced_env(gateway_env, receiver, LLM_GATEWAY_OTEL="off", OTEL_SERVICE_NAME="off")
    server = servers.daphne(server_logs, env).start()
    try:
        sdk(server, api_key).chat.completions.create(
            **CHAT, extra_headers={"traceparent": TRACEPARENT}
        )
        # With tracing off the client's context passes through untouched.
        assert engine_traceparent(fake_requests) == TRACEPARENT
    finally:
        server.stop()  # a stopping gateway flushes its exporters: none, here
    spans = [s for s in all_spans(receiver) if s["resource"].get("service.name") == "off"]
    points = httpx.get(receiver.url + "/_metrics").json()
    assert spans == [] and [p for p in points if p["service"] == "off"] == []
    assert "OpenTelemetry" not in server.output()


def test_the_django_face_joins_the_trace_of_django_instrumentation(
    gateway_env, receiver, server_logs, api_key, fake_requests
):
    env = traced_env(gateway_env, receiver)
    server = servers.daphne(
        server_logs, env, face="django", application="tests.otel_django_asgi:application"
    )
    server.start()
    try:
        rid = f"dj-{os.urandom(4).hex()}"
        headers = {"traceparent": TRACEPARENT, "X-Request-Id": rid}
        sdk(server, api_key).chat.completions.create(**CHAT, extra_headers=headers)
        ours, (client,) = trace_of(receiver, rid)
    finally:
        server.stop()
    theirs = wait_until(
        lambda: next(
            (s for s in all_spans(receiver) if s["span_id"] == ours["parent_span_id"]), None
        ),
        5,
    )
    assert theirs is not None, "the gateway's span has no parent among the exported spans"
    # client -> the instrumentation's SERVER span -> the gateway's span -> CLIENT -> engine
    assert theirs["kind"] == "SERVER" and theirs["parent_span_id"] == CLIENT_SPAN
    assert theirs["scope"].startswith("opentelemetry.instrumentation.django")
    assert ours["kind"] == "INTERNAL" and ours["trace_id"] == theirs["trace_id"] == CLIENT_TRACE
    assert ours["resource"]["service.name"] == "the-project"  # the project's pipeline, kept
    assert engine_traceparent(fake_requests).split("-")[2] == client["span_id"]
