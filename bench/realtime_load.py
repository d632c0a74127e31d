"""Realtime sessions through one gateway process against the same sessions straight to the
engine: N sessions at once, each sending F frames a second for D seconds, each frame echoed
back by the fake engine (both ways), the round trip of every frame timed.

    .venv/bin/python bench/realtime_load.py [--sessions 100] [--rate 20] [--seconds 10]

Prints errors, the round trip's p50/p99 direct and through the gateway (the difference is
what the gateway adds to a frame, both ways), and the gateway's memory per open session
(its RSS with every session open, less before, over N).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import websockets
from local_gateway import engine_and_gateway  # bench/, this script's directory

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-00000000-benchbenchbenchbenchbenchbenchbenchbenchben"
ENGINE_PORT, GATEWAY_PORT = 9120, 8120


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def session(
    url: str,
    headers: dict[str, str],
    rate: float,
    seconds: float,
    times: list[float],
    opened: asyncio.Event,
    go: asyncio.Event,
) -> int:
    errors = 0
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        opened.set()
        await go.wait()
        pending: dict[str, float] = {}

        async def reader() -> None:
            async for message in ws:
                sent = pending.pop(str(message)[:24], None)
                if sent is not None:
                    times.append(time.perf_counter() - sent)

        task = asyncio.ensure_future(reader())
        interval, end, index = 1 / rate, time.perf_counter() + seconds, 0
        while time.perf_counter() < end:
            tag = f"{id(ws):016x}{index:08d}"
            pending[tag] = time.perf_counter()
            await ws.send(tag + " " + "x" * 200)
            index += 1
            await asyncio.sleep(interval)
        await asyncio.sleep(0.5)
        errors += len(pending)  # never came back
        task.cancel()
    return errors


async def run(url: str, headers: dict[str, str], args: argparse.Namespace, pid: int | None):
    times: list[float] = []
    events = [asyncio.Event() for _ in range(args.sessions)]
    go = asyncio.Event()
    before = rss_kib(pid) if pid else 0
    tasks = [
        asyncio.ensure_future(session(url, headers, args.rate, args.seconds, times, e, go))
        for e in events
    ]
    await asyncio.gather(*(e.wait() for e in events))
    during = rss_kib(pid) if pid else 0
    go.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = sum(r if isinstance(r, int) else 1 for r in results)
    return times, errors, (during - before) / args.sessions


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    workdir = Path("/tmp/llm-gateway-realtime-load")
    with engine_and_gateway(
        workdir, ENGINE_PORT, GATEWAY_PORT, KEY, LLM_GATEWAY_REQUEST_LOG="false"
    ) as (gateway, _):
        direct = f"ws://127.0.0.1:{ENGINE_PORT}/v1/realtime?model=fake-model"
        relayed = f"ws://127.0.0.1:{GATEWAY_PORT}/v1/realtime?model=fake-model"
        auth = {"Authorization": f"Bearer {KEY}"}
        d_times, d_errors, _ = asyncio.run(run(direct, {}, args, None))
        g_times, g_errors, per_session = asyncio.run(run(relayed, auth, args, gateway.pid))
        frames = args.sessions * args.rate * args.seconds
        print(
            f"{args.sessions} sessions x {args.rate:g} frames/s x {args.seconds:g} s "
            f"({frames:.0f} frames each way per run)"
        )
        for name, times, errors in (("direct", d_times, d_errors), ("gateway", g_times, g_errors)):
            print(
                f"  {name:8} frames echoed {len(times):6d}  errors {errors}  round trip p50 "
                f"{quantile(times, 0.5) * 1000:6.2f} ms  p99 {quantile(times, 0.99) * 1000:6.2f} ms"
            )
        added99 = quantile(g_times, 0.99) - quantile(d_times, 0.99)
        added50 = quantile(g_times, 0.5) - quantile(d_times, 0.5)
        print(
            f"  added by the gateway: p50 {added50 * 1000:.2f} ms, p99 {added99 * 1000:.2f} ms"
            " per frame (both ways)"
        )
        print(f"  gateway memory per open session: {per_session:.1f} KiB")


if __name__ == "__main__":
    main()
