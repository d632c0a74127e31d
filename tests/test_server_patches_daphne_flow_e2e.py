"""Backpressure through daphne (server.patches.daphne_flow): a client that reads its stream
slowly holds the engine back and still gets every byte, under the launcher and under the
plain daphne CLI. What a stalled reader costs in memory is measured by bench/saturation.py."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

import httpx
import pytest

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHUNKS, REPEAT = 6000, 1000  # each chunk's content is ~5 KB: ~34 MB in all


def open_stream(gateway, api_key: str, request_id: str) -> socket.socket:
    sock = socket.socket()
    # A small receive window: what the gateway cannot send waits on its side, not in ours.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.connect(("127.0.0.1", gateway.port))
    body = json.dumps(
        {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    sock.sendall(
        f"POST {gateway.api_path}/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {api_key}\r\nX-Request-Id: {request_id}\r\n"
        f"X-Fake-Chunks: {CHUNKS}\r\nX-Fake-Repeat: {REPEAT}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def seen(fake_requests, request_id: str) -> dict | None:
    return next((e for e in fake_requests() if e["headers"]["x-request-id"] == request_id), None)


def test_a_slow_reader_holds_the_engine_back_and_gets_every_byte(
    served_gateway, api_key, fake_requests
):
    request_id = f"flow-{os.urandom(4).hex()}"
    with contextlib.closing(open_stream(served_gateway, api_key, request_id)) as sock:
        received = sock.recv(4096)
        assert received.startswith(b"HTTP/1.1 200"), received[:200]
        assert wait_until(lambda: seen(fake_requests, request_id)), "the engine never saw it"
        # The client reads nothing: the engine could write its whole answer in well under a
        # second if the gateway took it all (without backpressure it did, ~37 MB in 3 s).
        # With it, the engine's writes stop once the socket buffers between are full: what it
        # wrote stops growing, short of the end.
        time.sleep(3)
        held = seen(fake_requests, request_id)["sent_bytes"]
        time.sleep(1)
        entry = seen(fake_requests, request_id)
        assert not entry["completed"], "the gateway read the whole answer for a stalled client"
        assert entry["sent_bytes"] == held, "the engine went on writing to a stalled client"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)  # now read it all
        sock.settimeout(20)
        while chunk := sock.recv(1 << 20):
            received += chunk
            if received.endswith(b"0\r\n\r\n"):
                break
    assert b"data: [DONE]" in received[-200:] and b'"error"' not in received
    assert received.count(b"data: {") == CHUNKS + 1  # every content chunk and the last one


def test_pipelined_streams_are_each_answered_whole_in_order(served_gateway, api_key):
    """The second stream waits its turn behind the first (Twisted holds one producer per
    connection): both whole, in order."""
    body = json.dumps(
        {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    one = (
        f"POST {served_gateway.api_path}/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {api_key}\r\nX-Fake-Chunks: 200\r\nX-Fake-Repeat: 100\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", served_gateway.port), timeout=30) as sock:
        sock.sendall(one + one)
        received = b""
        while received.count(b"data: [DONE]") < 2:
            chunk = sock.recv(1 << 20)
            assert chunk, received[-300:]
            received += chunk
    first, second = received.split(b"HTTP/1.1 200", 2)[1:]
    for answer in (first, second):
        assert answer.count(b"data: {") == 201 and b'"error"' not in answer


def test_a_slow_realtime_reader_holds_the_engine_back(served_gateway, api_key, upstream):
    """The same for a WebSocket: 400 frames of 100 KB asked for, none read for 3 s."""
    import asyncio

    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{served_gateway.port}{served_gateway.api_path}/realtime?model=fake-model"
    frames, size = 400, 100_000

    def frames_sent() -> int:
        return int(httpx.get(upstream.url + "/_fake/realtime").json()[-1]["frames_sent"])

    async def run() -> tuple[int, int, list[int]]:
        auth = {"Authorization": f"Bearer {api_key}"}
        # max_queue=1: the client stops reading its socket after one frame it was not asked
        # for, as a slow application does.
        async with connect(url, additional_headers=auth, max_queue=1, max_size=None) as ws:
            for _ in range(frames):
                await ws.send(json.dumps({"type": "big", "bytes": size}))
            await asyncio.sleep(3)
            held = await asyncio.to_thread(frames_sent)
            await asyncio.sleep(1)
            later = await asyncio.to_thread(frames_sent)
            sizes = [len(await asyncio.wait_for(ws.recv(), 30)) for _ in range(frames)]
        return held, later, sizes

    held, later, sizes = asyncio.run(run())
    # Without backpressure the engine sent all 400 (40 MB) into the gateway while the client
    # read none; with it, its sends wait once the buffers between are full.
    assert held == later < frames, (held, later)
    assert sizes == [size] * frames  # every frame, whole, once the client reads


@pytest.fixture(scope="module", params=["fast", "django", "plain"])
def impatient_gateway(request, gateway_env, server_logs):
    """A gateway that cuts a client that reads nothing for 2 s (LLM_GATEWAY_SEND_TIMEOUT)."""
    env = {**gateway_env, "LLM_GATEWAY_SEND_TIMEOUT": "2", "LLM_GATEWAY_REQUEST_LOG": "true"}
    face = "django" if request.param == "django" else "fast"
    server = servers.daphne(server_logs, env, face=face, launcher=request.param != "plain")
    yield server.start()
    server.stop()


def test_a_client_that_reads_nothing_is_cut_and_its_engine_request_closed(
    impatient_gateway, api_key, fake_requests
):
    from llm_gateway.models import RequestLog

    request_id = f"stall-{os.urandom(4).hex()}"
    with contextlib.closing(open_stream(impatient_gateway, api_key, request_id)) as sock:
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        # Reads nothing more: after 2 s of a full send buffer the gateway gives up on it.
        ended = wait_until(lambda: (seen(fake_requests, request_id) or {}).get("disconnected"), 30)
        assert ended, "the engine's request stayed open for a client that read nothing"
        assert not seen(fake_requests, request_id)["completed"]
    row = wait_until(lambda: RequestLog.objects.filter(request_id=request_id).first(), 30)
    assert row is not None and row.ending == "client_stalled"


def test_a_slow_but_steady_reader_is_not_cut(impatient_gateway, api_key):
    request_id = f"steady-{os.urandom(4).hex()}"
    with contextlib.closing(open_stream(impatient_gateway, api_key, request_id)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        sock.settimeout(30)
        received = b""
        while chunk := sock.recv(256 * 1024):  # at most ~5 MB/s: the gateway waits, often
            received += chunk
            if received.endswith(b"0\r\n\r\n"):
                break
            time.sleep(0.05)
    assert b"data: [DONE]" in received[-200:] and received.count(b"data: {") == CHUNKS + 1
