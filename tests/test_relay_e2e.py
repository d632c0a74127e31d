"""The relay end to end: openai client -> daphne (project.asgi) -> fake engine process."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import openai
import pytest

from . import servers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
FULL_TEXT = "Hello wörld 🙂 ünïcode text"


@pytest.fixture
def gateway(face_gateway):
    """Every test here runs against both faces: the ASGI fast path and the Django face."""
    return face_gateway


def sdk(gateway, api_key, **kwargs):
    return openai.OpenAI(base_url=gateway.api, api_key=api_key, max_retries=0, **kwargs)


def wait_until(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    return predicate()


def test_chat_completion_with_the_openai_client(gateway, api_key, fake_requests):
    client = sdk(gateway, api_key)
    raw = client.chat.completions.with_raw_response.create(**CHAT)
    completion = raw.parse()
    assert completion.choices[0].message.content == FULL_TEXT
    assert completion.usage.completion_tokens == 5
    (seen,) = fake_requests()
    # The engine gets the gateway's own key, never the client's, and the same request id.
    assert seen["headers"]["authorization"] == "Bearer sk-upstream-secret-never-shown"
    assert api_key not in json.dumps(seen)
    assert seen["headers"]["x-request-id"] == raw.headers["x-request-id"]


def test_streaming_with_the_sync_and_async_clients(gateway, api_key):
    stream = sdk(gateway, api_key).chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FULL_TEXT
    assert chunks[-1].usage.total_tokens == 12

    async def run():
        client = openai.AsyncOpenAI(base_url=gateway.api, api_key=api_key, max_retries=0)
        text = ""
        async for chunk in await client.chat.completions.create(**CHAT, stream=True):
            text += chunk.choices[0].delta.content or ""
        await client.close()
        return text

    assert asyncio.run(run()) == FULL_TEXT


def test_completions_embeddings_models(gateway, api_key):
    client = sdk(gateway, api_key)
    assert client.completions.create(model="fake-model", prompt="x").choices[0].text == FULL_TEXT
    text = "".join(
        c.choices[0].text
        for c in client.completions.create(model="fake-model", prompt="x", stream=True)
    )
    assert text == FULL_TEXT
    assert client.embeddings.create(model="fake-model", input="x").data[0].embedding == [
        0.1,
        0.2,
        0.3,
    ]
    assert [m.id for m in client.models.list()] == ["fake-model"]


@pytest.mark.parametrize("split", [0, 1, 7, 100])
def test_streamed_bytes_are_identical_to_the_engines(gateway, upstream, api_key, split):
    body = json.dumps({**CHAT, "stream": True}).encode()
    headers = {
        "X-Fake-Chunks": "12",
        "X-Fake-Split": str(split),
        "Content-Type": "application/json",
    }
    direct = httpx.post(
        upstream.url + "/v1/chat/completions", content=body, headers=headers
    ).content
    via = httpx.post(
        gateway.api + "/chat/completions",
        content=body,
        headers={**headers, "Authorization": f"Bearer {api_key}"},
    )
    assert via.status_code == 200
    assert via.headers["content-type"].startswith("text/event-stream")
    assert via.headers["cache-control"] == "no-cache" and via.headers["x-accel-buffering"] == "no"
    assert via.content == direct and direct.endswith(b"data: [DONE]\n\n")


def test_chunks_are_not_batched(gateway, api_key):
    """With 150 ms between engine chunks, each arrives on its own, about 150 ms apart."""
    headers = {"Authorization": f"Bearer {api_key}", "X-Fake-Chunks": "4", "X-Fake-Delay-Ms": "150"}
    arrivals = []
    with httpx.stream(
        "POST", gateway.api + "/chat/completions", json={**CHAT, "stream": True}, headers=headers
    ) as r:
        for _ in r.iter_raw():
            arrivals.append(time.monotonic())
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert len(arrivals) >= 4
    assert sum(1 for g in gaps if g > 0.1) >= 3


def test_upstream_request_id_header_is_a_setting(gateway_env, server_logs, api_key, fake_requests):
    env = {**gateway_env, "LLM_GATEWAY_UPSTREAM_REQUEST_ID_HEADER": "X-Gateway-Request-Id"}
    server = servers.daphne(server_logs, env).start()
    try:
        headers = {"Authorization": f"Bearer {api_key}", "X-Request-Id": "client-chosen-id"}
        assert httpx.get(server.url + "/v1/models", headers=headers).status_code == 200
        (seen,) = fake_requests()
        assert seen["headers"]["x-gateway-request-id"] == "client-chosen-id"
        assert "x-request-id" not in seen["headers"]
    finally:
        server.stop()


def test_request_body_goes_upstream_byte_for_byte(gateway, api_key, fake_requests):
    body = (
        b'{"model":"fake-model",  "messages":[{"role":"user",'
        b'"content":"caf\\u00e9 \xc3\xa9"}],"x":1.50}'
    )
    r = httpx.post(
        gateway.api + "/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert r.status_code == 200
    assert fake_requests()[0]["body"].encode() == body


def test_catch_all_relays_any_path_method_and_query(gateway, api_key, fake_requests):
    auth = {"Authorization": f"Bearer {api_key}"}
    r = httpx.request("DELETE", gateway.api + "/files/abc?purpose=x&y=%20", headers=auth)
    assert r.json() == {"method": "DELETE", "path": "/v1/files/abc?purpose=x&y=%20", "body": ""}
    r = httpx.post(gateway.api + "/audio/anything", content=b"\x00\x01binary", headers=auth)
    assert r.status_code == 200 and r.json()["path"] == "/v1/audio/anything"
    seen = fake_requests()[0]["headers"]
    assert seen["authorization"] == "Bearer sk-upstream-secret-never-shown"


def test_hop_by_hop_headers_and_client_credentials_stay_behind(gateway, api_key, fake_requests):
    extra = (
        f"Authorization: Bearer {api_key}\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
        "Proxy-Authorization: Basic c2VjcmV0\r\nUpgrade: h2c\r\nTrailer: X-T\r\n"
        "Accept-Encoding: gzip\r\nX-Custom: kept\r\n"
    )
    sock = _raw_request(gateway, CHAT, extra)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    sock.close()
    seen = wait_until(lambda: fake_requests())[0]["headers"]
    assert seen["x-custom"] == "kept"
    for hop in ("keep-alive", "te", "proxy-authorization", "upgrade", "trailer"):
        assert hop not in seen, hop
    assert seen["accept-encoding"] == "identity"  # bytes come back as the engine sent them
    assert api_key not in str(seen)


def error_of(response):
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"", "not valid JSON"),
    ],
)
def test_invalid_json_is_a_400(gateway, api_key, fake_requests, body, fragment):
    r = httpx.post(
        gateway.api + "/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert r.status_code == 400
    error = error_of(r)
    assert fragment in error["message"] and error["type"] == "invalid_request_error"
    assert fake_requests() == []


def test_too_large_body_is_a_413(gateway, api_key, fake_requests):
    big = b'{"model": "m", "pad": "' + b"x" * 70_000 + b'"}'
    r = httpx.post(
        gateway.api + "/chat/completions",
        content=big,
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"

    def chunked():
        for _ in range(20):
            yield b"x" * 5000

    r = httpx.post(
        gateway.api + "/embeddings",
        content=chunked(),
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert r.status_code == 413
    assert fake_requests() == []


ERROR_CASES = [
    # (fake status, fake error kind, gateway status, openai exception)
    (400, "openai", 400, openai.BadRequestError),
    (404, "openai", 404, openai.NotFoundError),
    (422, "flat", 422, openai.UnprocessableEntityError),
    (429, "openai", 429, openai.RateLimitError),
    (400, "traceback", 400, openai.BadRequestError),
    (500, "text", 502, openai.InternalServerError),
    (502, "html", 502, openai.InternalServerError),
    (401, "openai", 502, openai.InternalServerError),
]


@pytest.mark.parametrize(("fake_status", "kind", "status", "exception"), ERROR_CASES)
def test_engine_errors_become_openai_errors(gateway, api_key, fake_status, kind, status, exception):
    client = sdk(
        gateway, api_key, default_headers={"X-Fake-Status": str(fake_status), "X-Fake-Error": kind}
    )
    with pytest.raises(exception) as info:
        client.chat.completions.create(**CHAT)
    assert info.value.status_code == status
    error = info.value.body
    assert set(error) >= {"message", "type", "param", "code"}
    assert (
        "Traceback" not in error["message"]
        and "/opt/" not in error["message"]
        and "/srv/" not in error["message"]
    )
    assert "<html" not in error["message"]
    if kind == "openai" and fake_status < 500 and fake_status != 401:
        assert error == {
            "message": f"fake error {fake_status}",
            "type": "invalid_request_error",
            "param": "model",
            "code": "fake_code",
        }
    if kind == "traceback":
        assert (
            error["message"] == "ValueError: Requested tokens (9000) exceed context window of 2048"
        )
        assert error["param"] == "messages"


def test_rate_limit_keeps_retry_after(gateway, api_key, upstream):
    r = httpx.post(
        gateway.api + "/chat/completions",
        json=CHAT,
        headers={"Authorization": f"Bearer {api_key}", "X-Fake-Status": "429"},
    )
    assert r.status_code == 429 and error_of(r)["code"] == "fake_code"
    assert r.headers["retry-after"] == "7"  # the engine's, passed on


def test_client_auth_error_is_an_authentication_error(gateway):
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(gateway, "sk-nope").models.list()
    assert info.value.body["code"] == "invalid_api_key"


def test_upstream_read_timeout_is_a_504(gateway, api_key):
    client = sdk(gateway, api_key, default_headers={"X-Fake-Sleep-Ms": "3000"})
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(**CHAT)
    assert info.value.status_code == 504 and info.value.body["code"] == "upstream_timeout"


@pytest.mark.parametrize("split", [0, 5])
def test_stream_broken_mid_way_ends_with_an_error_event(gateway, api_key, split):
    headers = {"X-Fake-Chunks": "6", "X-Fake-Abort-After": "3", "X-Fake-Split": str(split)}
    stream = sdk(gateway, api_key, default_headers=headers).chat.completions.create(
        **CHAT, stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["Hello", " wörld", " 🙂"]
    assert info.value.body["code"] == "upstream_error"


def test_connection_dropped_after_done_is_not_an_error(gateway, api_key):
    headers = {"X-Fake-Chunks": "4", "X-Fake-Abort-After-Done": "1"}
    stream = sdk(gateway, api_key, default_headers=headers).chat.completions.create(
        **CHAT, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "Hello wörld 🙂 ünïcode"
    raw = httpx.post(
        gateway.api + "/chat/completions",
        json={**CHAT, "stream": True},
        headers={**headers, "Authorization": f"Bearer {api_key}"},
    ).content
    assert raw.endswith(b"data: [DONE]\n\n") and b'"error"' not in raw


def test_stream_that_stalls_ends_with_a_timeout_event(gateway, api_key):
    stream = sdk(gateway, api_key, default_headers={"X-Fake-Hang": "1"}).chat.completions.create(
        **CHAT, stream=True
    )
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert info.value.body["code"] == "upstream_timeout"


def _raw_request(gateway, payload, extra_headers=""):
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    body = json.dumps(payload).encode()
    sock.sendall(
        f"POST {gateway.api_path}/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra_headers}\r\n".encode()
        + body
    )
    return sock


def test_client_disconnect_mid_stream_closes_the_upstream_request(gateway, api_key, fake_requests):
    headers = f"Authorization: Bearer {api_key}\r\nX-Fake-Chunks: 100\r\nX-Fake-Delay-Ms: 50\r\n"
    sock = _raw_request(gateway, {**CHAT, "stream": True}, headers)
    assert b"data:" in sock.recv(65536)
    closed_at = time.time()
    sock.close()
    entry = wait_until(
        lambda: next((e for e in fake_requests() if e["disconnected"]), None), timeout=3
    )
    assert entry is not None, "the engine never saw the request end"
    assert entry["disconnected_at"] - closed_at < 1.0
    assert not entry["completed"]


def test_client_disconnect_while_waiting_closes_the_upstream_request(
    gateway, api_key, fake_requests
):
    headers = f"Authorization: Bearer {api_key}\r\nX-Fake-Sleep-Ms: 1500\r\n"
    sock = _raw_request(gateway, CHAT, headers)
    assert wait_until(lambda: fake_requests(), timeout=2)
    closed_at = time.time()
    sock.close()
    entry = wait_until(
        lambda: next((e for e in fake_requests() if e["disconnected"]), None), timeout=3
    )
    assert entry is not None and entry["disconnected_at"] - closed_at < 1.0
