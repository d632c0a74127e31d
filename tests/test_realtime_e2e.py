"""/v1/realtime end to end: websockets and the openai SDK -> daphne -> the fake engine's
realtime endpoint (OpenAI's and vLLM's event names)."""

from __future__ import annotations

import json
import os
import signal

import httpx
import openai
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from llm_gateway.models import ApiKey, RequestLog

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module", params=["launcher", "plain-daphne"])
def realtime_gateway(request, gateway_env, server_logs):
    """The fast face under the launcher, then under the plain daphne CLI: close codes such
    as 1009 and 1011 need the server's patch (server.patches.daphne_close) either way."""
    env = {
        **gateway_env,
        "LLM_GATEWAY_REQUEST_LOG": "true",
        "LLM_GATEWAY_WS_MAX_FRAME_BYTES": "4096",
    }
    server = servers.daphne(server_logs, env, launcher=request.param == "launcher").start()
    yield server
    server.stop()


def ws_url(gateway, query="model=fake-model"):
    return f"ws://127.0.0.1:{gateway.port}/v1/realtime?{query}"


def sessions(upstream):
    return httpx.get(upstream.url + "/_fake/realtime").json()


def test_the_key_in_the_header_and_frames_both_ways(
    realtime_gateway, api_key, upstream, fake_requests
):
    with connect(
        ws_url(realtime_gateway), additional_headers={"Authorization": f"Bearer {api_key}"}
    ) as ws:
        assert ws.subprotocol is None
        for i in range(50):
            ws.send(f"text {i}")
            ws.send(bytes([i]) * 10)
        received = [ws.recv(timeout=5) for _ in range(100)]
        assert ws.ping().wait(timeout=2)  # pings are answered
    assert received == [x for i in range(50) for x in (f"text {i}", bytes([i]) * 10)]
    seen = sessions(upstream)[-1]
    assert seen["query"] == "model=fake-model"
    assert seen["headers"]["authorization"] == "Bearer sk-upstream-secret-never-shown"


def test_the_key_in_the_subprotocol_is_never_echoed(realtime_gateway, api_key, upstream):
    offered = ["realtime", f"openai-insecure-api-key.{api_key}"]
    with connect(ws_url(realtime_gateway), subprotocols=offered) as ws:
        assert ws.subprotocol == "realtime"
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
    seen = sessions(upstream)[-1]
    assert seen["protocol"] == "realtime"
    assert api_key not in json.dumps(seen)
    assert api_key not in realtime_gateway.output()


@pytest.mark.parametrize(
    "headers, subprotocols",
    [
        ({}, None),
        ({"Authorization": "Bearer sk-wrong"}, None),
        ({}, ["openai-insecure-api-key.sk-nope"]),
    ],
)
def test_a_missing_or_bad_key_is_refused_before_accept(realtime_gateway, headers, subprotocols):
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(realtime_gateway), additional_headers=headers, subprotocols=subprotocols)
    assert refused.value.response.status_code == 403


def test_close_codes_reach_the_other_side(realtime_gateway, api_key, upstream):
    auth = {"Authorization": f"Bearer {api_key}"}
    with connect(ws_url(realtime_gateway), additional_headers=auth) as ws:
        ws.send(json.dumps({"type": "close", "code": 4002, "reason": "done here"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 4002 and closed.value.rcvd.reason == "done here"
    with connect(ws_url(realtime_gateway), additional_headers=auth) as ws:
        ws.send("ping")
        ws.recv(timeout=5)
        ws.close(code=4001, reason="bye")
    assert wait_until(lambda: sessions(upstream)[-1]["close_code"] == 4001, 30)


def test_an_engine_that_dies_closes_the_client_with_1011(realtime_gateway, api_key):
    with connect(
        ws_url(realtime_gateway), additional_headers={"Authorization": f"Bearer {api_key}"}
    ) as ws:
        ws.send(json.dumps({"type": "die"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1011


def test_oversized_frames_close_with_1009(realtime_gateway, api_key):
    auth = {"Authorization": f"Bearer {api_key}"}
    with connect(ws_url(realtime_gateway), additional_headers=auth, max_size=None) as ws:
        ws.send("x" * 5000)  # the client's frame
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1009
    with connect(ws_url(realtime_gateway), additional_headers=auth, max_size=None) as ws:
        ws.send(json.dumps({"type": "big", "bytes": 5000}))  # the engine's frame
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1009


def test_an_engine_that_cannot_be_reached_fails_the_upgrade(gateway_env, server_logs, api_key):
    env = {**gateway_env, "LLM_GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{servers.free_port()}/v1"}
    gateway = servers.daphne(server_logs, env).start()
    try:
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url(gateway), additional_headers={"Authorization": f"Bearer {api_key}"})
        assert refused.value.response.status_code == 403
    finally:
        gateway.stop()


def test_usage_and_the_session_row(realtime_gateway, api_key):
    request_id = f"rt-{os.urandom(6).hex()}"
    headers = {"Authorization": f"Bearer {api_key}", "X-Request-Id": request_id}
    with connect(ws_url(realtime_gateway), additional_headers=headers) as ws:
        ws.send(json.dumps({"type": "response.create"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "response.created"
        assert json.loads(ws.recv(timeout=5))["type"] == "response.done"
        ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "transcription.done"
    row = wait_until(lambda: RequestLog.objects.filter(request_id=request_id).first(), 5)
    assert row is not None
    assert (row.path, row.status, row.stream) == ("/realtime", 101, True)
    assert (row.prompt_tokens, row.completion_tokens, row.usage_source) == (5 + 3, 7 + 4, "engine")
    assert row.ending == "done" and row.duration_ms > 0


def test_a_session_is_one_request_in_flight(realtime_gateway):
    _, key = ApiKey.create(f"rt-one-{os.urandom(3).hex()}", max_parallel=1)
    auth = {"Authorization": f"Bearer {key}"}
    with connect(ws_url(realtime_gateway), additional_headers=auth) as ws:
        ws.send("hi")
        ws.recv(timeout=5)
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url(realtime_gateway), additional_headers=auth)
        assert refused.value.response.status_code == 403
    ok = wait_until(lambda: _opens(realtime_gateway, auth), 2)
    assert ok  # the slot was freed when the session ended


def _opens(gateway, auth) -> bool:
    try:
        with connect(ws_url(gateway), additional_headers=auth):
            return True
    except InvalidStatus:
        return False


def test_the_openai_sdk_realtime_client(realtime_gateway, api_key):
    client = openai.OpenAI(base_url=realtime_gateway.api, api_key=api_key, max_retries=0)
    realtime = client.realtime if hasattr(client, "realtime") else client.beta.realtime
    with realtime.connect(model="fake-model") as connection:
        connection.send({"type": "response.create"})
        kinds = []
        for event in connection:
            kinds.append(event.type)
            if event.type == "response.done":
                break
    assert kinds == ["response.created", "response.done"]


@pytest.mark.parametrize("launcher", [True, False], ids=["launcher", "plain-daphne"])
def test_a_drain_tells_sessions_to_go_away(gateway_env, server_logs, api_key, launcher):
    gateway = servers.daphne(server_logs, gateway_env, launcher=launcher).start()
    try:
        auth = {"Authorization": f"Bearer {api_key}"}
        with connect(ws_url(gateway), additional_headers=auth) as ws:
            ws.send("hi")
            ws.recv(timeout=5)
            gateway.process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
        assert closed.value.rcvd.code == 1001
        assert gateway.process.wait(30) == 0
    finally:
        gateway.stop()


def test_the_django_face_relays_realtime_too(django_gateway, api_key):
    url = f"ws://127.0.0.1:{django_gateway.port}/llm/v1/realtime?model=fake-model"
    with pytest.raises(InvalidStatus) as refused:
        connect(url)
    assert refused.value.response.status_code == 403
    with connect(url, subprotocols=["realtime", f"openai-insecure-api-key.{api_key}"]) as ws:
        assert ws.subprotocol == "realtime"
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
