"""Faults end to end, through daphne: the engine dies, stalls, resets, comes back (issue 17).

The engine that fails byte by byte is ``tests/faulty_engine.py``, a real process; the one
killed and restarted is the fake engine."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

import httpx
import pytest

from . import faulty_engine, servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def faulty(server_logs):
    port = servers.free_port()
    argv = [sys.executable, str(servers.ROOT / "tests" / "faulty_engine.py"), "--port", str(port)]
    server = servers.Server(argv, port, {}, server_logs / f"faulty-engine-{port}.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def faulty_gateway(faulty, gateway_env, server_logs):
    env = {**gateway_env, "LLM_GATEWAY_UPSTREAM_URL": faulty.url + "/v1"}
    server = servers.daphne(server_logs, env).start()
    yield server
    server.stop()


def post(gateway, api_key, fault: str, stream: bool, timeout: float = 10) -> httpx.Response:
    return httpx.post(
        gateway.api + "/chat/completions",
        json={**CHAT, "stream": stream},
        headers={"Authorization": f"Bearer {api_key}", "X-Fault": fault},
        timeout=timeout,
    )


def assert_openai_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["code"] == code


def events_of(body: bytes) -> list[bytes]:
    return [part + b"\n\n" for part in body.split(b"\n\n") if part]


def test_an_engine_that_never_answers_is_a_504_after_the_read_timeout(
    faulty_gateway, api_key, gateway_env
):
    started = time.monotonic()
    response = post(faulty_gateway, api_key, "silent", stream=False)
    waited = time.monotonic() - started
    assert_openai_error(response, 504, "upstream_timeout")
    assert waited >= float(gateway_env["LLM_GATEWAY_READ_TIMEOUT"]) * 0.9


@pytest.mark.parametrize("stream", [False, True])
def test_half_an_answer_then_a_stall_ends_with_a_timeout(faulty_gateway, api_key, stream):
    data, ends = faulty_engine.answer(stream)
    half = len(data) // 2
    response = post(faulty_gateway, api_key, f"stall:{half}", stream=stream)
    if not stream:
        assert_openai_error(response, 504, "upstream_timeout")
        return
    assert response.status_code == 200
    *relayed, last = events_of(response.content)
    assert relayed == [event for end, event in ends if end <= half]  # whole events only
    assert json.loads(last.removeprefix(b"data: "))["error"]["code"] == "upstream_timeout"


@pytest.mark.parametrize("stream", [False, True])
def test_resets_at_random_byte_offsets_lose_nothing_relayed_and_leak_no_half(
    faulty_gateway, api_key, stream
):
    data, ends = faulty_engine.answer(stream)
    head = data.index(b"\r\n\r\n") + 4
    rng = random.Random(17)
    offsets = sorted({0, 1, head - 1, head, len(data) - 1, *rng.sample(range(len(data)), 40)})
    for offset in offsets:
        how = rng.choice(["rst", "fin"])
        response = post(faulty_gateway, api_key, f"cut:{offset}:{how}", stream=stream)
        where = f"cut at {offset}/{len(data)} ({how})"
        if offset < head:  # no status line, or not all of its headers: nothing was relayed
            assert_openai_error(response, 502, "upstream_error")
            continue
        if not stream:
            # A body short of its Content-Length is never passed off as the answer.
            assert_openai_error(response, 502, "upstream_error")
            continue
        assert response.status_code == 200, where
        *relayed, last = events_of(response.content)
        whole = [event for end, event in ends if end <= offset]
        if whole and whole[-1] == b"data: [DONE]\n\n":
            # The answer was complete; only the connection's end was not: no error.
            assert [*relayed, last] == whole, where
            continue
        assert relayed == whole, where
        assert json.loads(last.removeprefix(b"data: "))["error"]["code"] == "upstream_error"
    # The gateway is still up and serving.
    assert post(faulty_gateway, api_key, "", stream=False).json()["choices"][0]["message"]


# The engine killed and restarted: a private fake engine and gateway, a fast watchdog.
INTERVAL = 1.0


@pytest.fixture
def engine(server_logs):
    server = servers.fake_upstream(server_logs)
    yield server
    server.stop()


@pytest.fixture
def engine_gateway(engine, gateway_env, server_logs):
    engine.start()
    env = {
        **gateway_env,
        "LLM_GATEWAY_UPSTREAM_URL": engine.url + "/v1",
        "LLM_GATEWAY_WATCHDOG_INTERVAL": str(INTERVAL),
        "LLM_GATEWAY_WATCHDOG_FAILURES": "1",
    }
    server = servers.daphne(server_logs, env).start()
    yield server
    server.stop()


async def open_streams(gateway, api_key: str, count: int, killed: asyncio.Event) -> list[float]:
    """``count`` paced streams; once each has a chunk, ``killed`` is awaited. Each stream's
    time from the kill to its error event."""
    headers = {"Authorization": f"Bearer {api_key}", "X-Fake-Chunks": "1000"}
    headers["X-Fake-Delay-Ms"] = "50"
    started = [asyncio.Event() for _ in range(count)]
    killed_at: list[float] = []

    async def one(index: int, client: httpx.AsyncClient) -> float:
        async with client.stream(
            "POST", "/chat/completions", json={**CHAT, "stream": True}, headers=headers
        ) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                started[index].set()
                if b'"error"' in chunk:
                    assert b"upstream_error" in chunk, chunk
                    return time.monotonic() - killed_at[0]
        raise AssertionError("the stream ended without an error event")

    async def kill_when_all_started() -> None:
        await asyncio.gather(*(event.wait() for event in started))
        killed_at.append(time.monotonic())
        killed.set()

    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=gateway.api, timeout=10, limits=limits) as client:
        results = await asyncio.gather(
            *(one(i, client) for i in range(count)), kill_when_all_started()
        )
    return [r for r in results if r is not None]


def test_an_engine_killed_mid_stream_ends_every_stream_with_an_error(
    engine, engine_gateway, api_key
):
    killed = asyncio.Event()

    async def run() -> list[float]:
        streams = asyncio.ensure_future(open_streams(engine_gateway, api_key, 20, killed))
        await killed.wait()
        assert engine.process is not None
        engine.process.kill()  # SIGKILL: no goodbye, the kernel closes its sockets
        return await streams

    delays = asyncio.run(run())  # each stream's wait is bounded by its client's timeout
    assert len(delays) == 20, delays


def test_a_restarted_engine_is_served_again(engine, engine_gateway, api_key):
    auth = {"Authorization": f"Bearer {api_key}"}
    engine.stop()
    dead = wait_until(
        lambda: httpx.get(engine_gateway.url + "/health").status_code == 503, timeout=30
    )
    assert dead, "the watchdog never saw the engine die"
    engine.start()  # returns once its port accepts

    def served() -> bool:
        response = httpx.post(engine_gateway.api + "/chat/completions", json=CHAT, headers=auth)
        return response.status_code == 200

    assert wait_until(served, timeout=30, every=0.05), "never served again"
