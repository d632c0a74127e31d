"""One gateway process driven past its capacity with paced streams: does it degrade without
errors, and does a client's disconnect still reach the engine within 2 s?

    .venv/bin/python bench/saturation.py [--streams 100,200,400] [--seconds 20]

For each level: N streams at once through the fast face, each 50 chunks a second (20 ms
apart) from the fake engine (tests/fake_upstream.py), read by cheap raw-socket clients. Five
probe streams are opened meanwhile, read for a second, then closed; the engine's record of
when each ended, less when its client closed it, is the disconnect's delay. Each level runs
straight to the engine first (the baseline: what the engine and the clients manage on this
machine), then through the gateway. Prints the chunk rate offered and delivered, the streams
that failed, the latency of the cheapest request (GET /live of the gateway, the engine's
/health: the event loop's lag), and the probes' delays.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx
from local_gateway import engine_and_gateway  # bench/, this script's directory

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-00000000-saturationsaturationsaturationsaturationsat"
ENGINE_PORT, GATEWAY_PORT = 9140, 8140
WORKDIR = Path("/tmp/llm-gateway-saturation")
BODY = json.dumps(
    {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
).encode()


def request(request_id: str, chunks: int) -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY}\r\n"
        f"X-Request-Id: {request_id}\r\nX-Fake-Chunks: {chunks}\r\nX-Fake-Delay-Ms: 20\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


async def stream(
    port: int, request_id: str, chunks: int, stop: asyncio.Event, counts: list[int]
) -> str:
    """Read one stream until it ends or ``stop``; how it ended."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(request_id, chunks))
    tail = b""
    try:
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.5)
            except TimeoutError:
                continue
            if not data:
                return "cut"
            counts[0] += (tail[-1:] + data).count(b"\n\n")
            tail = (tail + data)[-64:]
            if b'"error"' in data:
                return "error"
            if b"data: [DONE]" in tail:
                return "done"
        return "open"
    finally:
        writer.transport.abort()


async def probe(port: int, request_id: str) -> float:
    """Open a stream, read it for a second, close it; when it was closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(request_id, 100_000))
    end = time.monotonic() + 1
    while time.monotonic() < end:
        try:
            await asyncio.wait_for(reader.read(65536), end - time.monotonic())
        except TimeoutError:
            break
    writer.close()
    return time.time()


async def live_latency(port: int, samples: int = 10) -> float:
    path = "/live" if port == GATEWAY_PORT else "/health"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        times = []
        for _ in range(samples):
            begun = time.perf_counter()
            await client.get(path)
            times.append(time.perf_counter() - begun)
            await asyncio.sleep(0.2)
    return statistics.median(times) * 1000


async def level(port: int, streams: int, seconds: float, tag: str) -> dict[str, object]:
    chunks = int(50 * (seconds + 10))  # more than the level lasts: every stream is still open
    stop, counts = asyncio.Event(), [0]
    tasks = [
        asyncio.ensure_future(stream(port, f"{tag}-s{i}", chunks, stop, counts))
        for i in range(streams)
    ]
    await asyncio.sleep(2)  # every stream opened
    counted_from, began = counts[0], time.monotonic()
    probes = []
    lag = 0.0
    for i in range(5):
        probes.append(asyncio.ensure_future(probe(port, f"{tag}-p{i}")))
        if i == 2:
            lag = await live_latency(port)
        await asyncio.sleep(seconds / 6)
    await asyncio.sleep(max(0.0, seconds - (time.monotonic() - began)))
    delivered = (counts[0] - counted_from) / (time.monotonic() - began)
    ended = await asyncio.gather(*probes)
    closed = dict(zip([f"{tag}-p{i}" for i in range(5)], ended, strict=True))
    stop.set()
    endings = await asyncio.gather(*tasks)
    await asyncio.sleep(3)  # the engine sees the probes end, however late
    seen = httpx.get(f"http://127.0.0.1:{ENGINE_PORT}/_fake/requests", timeout=60).json()
    delays = []
    for entry in seen:
        rid = entry["headers"].get("x-request-id", "")
        if rid in closed:
            ended = entry.get("disconnected_at")
            delays.append(round(ended - closed[rid], 3) if ended else float("inf"))
    httpx.post(f"http://127.0.0.1:{ENGINE_PORT}/_fake/reset")
    return {
        "streams": streams,
        "offered": streams * 50,
        "delivered": round(delivered),
        "failed": sum(e in ("cut", "error") for e in endings),
        "live_ms": round(lag, 1),
        "disconnect_s": sorted(delays),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", default="100,200,400")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with engine_and_gateway(
        WORKDIR, ENGINE_PORT, GATEWAY_PORT, KEY, LLM_GATEWAY_REQUEST_LOG="false"
    ):
        print(
            "streams  path     chunks/s offered  delivered  failed  latency ms  disconnect seen (s)"
        )
        for index, streams in enumerate(int(n) for n in args.streams.split(",")):
            for name, port in (("direct", ENGINE_PORT), ("gateway", GATEWAY_PORT)):
                result = asyncio.run(level(port, streams, args.seconds, f"l{index}{name}"))
                print(
                    f"{result['streams']:7}  {name:7}  {result['offered']:16}  "
                    f"{result['delivered']:9}  {result['failed']:6}  {result['live_ms']:10}  "
                    f"{result['disconnect_s']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
