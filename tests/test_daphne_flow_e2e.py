"""Backpressure through daphne: a client that reads its stream slowly holds the engine back
(the gateway's memory per stream stays bounded) and still gets every byte."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHUNKS, REPEAT = 6000, 1000  # each chunk's content is ~5 KB: ~34 MB in all


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


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
    face_gateway, api_key, fake_requests
):
    assert face_gateway.process is not None
    pid = face_gateway.process.pid
    request_id = f"flow-{os.urandom(4).hex()}"
    sock = open_stream(face_gateway, api_key, request_id)
    received = sock.recv(4096)
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    assert wait_until(lambda: seen(fake_requests, request_id)), "the engine never saw it"
    rss_before = rss_bytes(pid)
    # The client reads nothing for 3 s: the engine could write its whole answer in well under
    # a second, if the gateway took it all.
    time.sleep(3)
    entry = seen(fake_requests, request_id)
    grown = rss_bytes(pid) - rss_before
    total = entry["sent_bytes"]
    assert not entry["completed"], "the gateway read the whole answer for a client that did not"
    # In flight: the kernel's socket buffers (on loopback they grow to many MB: 9.8 MB seen)
    # and Twisted's 64 KB. Without backpressure the engine wrote all ~37 MB within the 3 s and
    # the gateway grew by 33 MB; with it, by 28 KB.
    assert total < 20 * 2**20, f"the engine wrote {total} bytes to a client that read 4 KB"
    assert grown < 4 * 2**20, f"the gateway grew by {grown} bytes for one stalled stream"
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)  # now read it all
    sock.settimeout(20)
    while chunk := sock.recv(1 << 20):
        received += chunk
        if received.endswith(b"0\r\n\r\n"):
            break
    sock.close()
    assert b"data: [DONE]" in received[-200:] and b'"error"' not in received
    assert received.count(b"data: {") == CHUNKS + 1  # every content chunk and the last one


def test_pipelined_streams_are_each_answered_whole_in_order(face_gateway, api_key):
    """The second stream waits its turn behind the first (Twisted holds one producer per
    connection): both whole, in order."""
    body = json.dumps(
        {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    one = (
        f"POST {face_gateway.api_path}/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {api_key}\r\nX-Fake-Chunks: 200\r\nX-Fake-Repeat: 100\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", face_gateway.port), timeout=10) as sock:
        sock.sendall(one + one)
        received = b""
        while received.count(b"data: [DONE]") < 2:
            chunk = sock.recv(1 << 20)
            assert chunk, received[-300:]
            received += chunk
    first, second = received.split(b"HTTP/1.1 200", 2)[1:]
    for answer in (first, second):
        assert answer.count(b"data: {") == 201 and b'"error"' not in answer


def test_a_slow_realtime_reader_holds_the_engine_back(face_gateway, api_key):
    """The same for a WebSocket: 400 frames of 100 KB asked for, none read for 3 s."""
    import asyncio

    from websockets.asyncio.client import connect

    assert face_gateway.process is not None
    pid = face_gateway.process.pid
    url = f"ws://127.0.0.1:{face_gateway.port}{face_gateway.api_path}/realtime?model=fake-model"
    frames, size = 400, 100_000

    async def run() -> tuple[int, list[int]]:
        auth = {"Authorization": f"Bearer {api_key}"}
        # max_queue=1: the client stops reading its socket after one frame it was not asked
        # for, as a slow application does.
        async with connect(url, additional_headers=auth, max_queue=1, max_size=None) as ws:
            before = rss_bytes(pid)
            for _ in range(frames):
                await ws.send(json.dumps({"type": "big", "bytes": size}))
            await asyncio.sleep(3)
            grown = rss_bytes(pid) - before
            sizes = [len(await asyncio.wait_for(ws.recv(), 20)) for _ in range(frames)]
        return grown, sizes

    grown, sizes = asyncio.run(run())
    assert sizes == [size] * frames  # every frame, whole, once the client reads
    # Without backpressure the gateway took the engine's 40 MB while the client read none.
    assert grown < 8 * 2**20, f"the gateway grew by {grown} bytes for one stalled session"
