#!/usr/bin/env python3
"""Many open streams through one gateway process: errors, and memory per open stream.

    /tmp/bench-venv/bin/python bench/open_streams.py [--streams 1000] [--chunks 64] [--delay-ms 100]

Starts the harness's fake engine (paced: --delay-ms between chunks) and one gateway process
(bench/start_gateway.sh), opens --streams concurrent streaming chat completions over raw
sockets, and reports: streams completed with all their events and [DONE], errors, and the
gateway's resident memory idle (after a warm-up) and at its peak while they were all open.
The same load against the engine directly is the baseline for time and errors. Loopback
only; every process started here is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = Path(os.environ.get("SHARED_BENCH", ROOT.parent / "shared" / "bench"))
KEY = "sk-00000000-benchbenchbenchbenchbenchbenchbenchbenchben"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


async def one_stream(port: int, body: bytes, chunks: int, auth: bool) -> str | None:
    """None when the stream was complete, else what went wrong."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return f"connect: {exc}"
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        + (f"Authorization: Bearer {KEY}\r\n" if auth else "")
        + "\r\n"
    )
    writer.write(head.encode() + body)
    data = b""
    try:
        while b"data: [DONE]" not in data:
            piece = await asyncio.wait_for(reader.read(65536), 60)
            if not piece:
                break
            data += piece
    except (TimeoutError, OSError) as exc:
        return f"read: {type(exc).__name__}"
    finally:
        writer.close()
    if not data.startswith(b"HTTP/1.1 200"):
        return data[:60].decode(errors="replace")
    events = data.count(b'"content"')
    if b"data: [DONE]" not in data or events < chunks:
        return f"incomplete: {events} content events"
    return None


async def load(port: int, streams: int, chunks: int, auth: bool, sample_pid: int | None) -> dict:
    body = json.dumps(
        {
            "model": "fake-model",
            "stream": True,
            "max_tokens": chunks,
            "messages": [{"role": "user", "content": "hi"}],
        }
    ).encode()
    peak = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            if sample_pid:
                peak = max(peak, rss_kb(sample_pid))
            await asyncio.sleep(0.05)

    sampler = asyncio.ensure_future(sample())
    start = time.monotonic()
    results = await asyncio.gather(*(one_stream(port, body, chunks, auth) for _ in range(streams)))
    elapsed = time.monotonic() - start
    done.set()
    await sampler
    errors = [r for r in results if r]
    return {
        "streams": streams,
        "ok": streams - len(errors),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "elapsed_s": round(elapsed, 2),
        "peak_rss_kb": peak,
    }


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--chunks", type=int, default=64)
    ap.add_argument("--delay-ms", type=float, default=100)
    ap.add_argument("--upstream-port", type=int, default=9110)
    ap.add_argument("--port", type=int, default=8011)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logs = Path("/tmp/bench-open-streams")
    logs.mkdir(exist_ok=True)
    upstream = start(
        [
            "bash",
            "-c",
            f'ulimit -n "$(ulimit -Hn)"; exec {sys.executable} {SHARED / "fake_upstream.py"} '
            f"--port {args.upstream_port}",
        ],
        logs / "upstream.log",
    )
    gateway = None
    try:
        wait_port(args.upstream_port)
        import urllib.request

        urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{args.upstream_port}/_fake/config",
                data=json.dumps({"delay_ms": args.delay_ms}).encode(),
                method="POST",
            )
        ).read()
        direct = asyncio.run(load(args.upstream_port, args.streams, args.chunks, False, None))
        gateway = start(
            ["bench/start_gateway.sh", str(args.port), KEY],
            logs / "gateway.log",
            {
                "FAKE_UPSTREAM_URL": f"http://127.0.0.1:{args.upstream_port}/v1",
                "BENCH_VAR": "/tmp/llm-gateway-bench-open-streams",
            },
        )
        wait_port(args.port)
        asyncio.run(load(args.port, 20, args.chunks, True, None))  # warm-up: pool, caches
        time.sleep(1)
        idle = rss_kb(gateway.pid)
        via = asyncio.run(load(args.port, args.streams, args.chunks, True, gateway.pid))
        after = rss_kb(gateway.pid)
        per_stream = (via["peak_rss_kb"] - idle) / args.streams
        ideal = (args.chunks - 1) * args.delay_ms / 1000
        ratio = via["elapsed_s"] / direct["elapsed_s"]
        print(
            f"open streams: {args.streams} concurrent, "
            f"{args.chunks} chunks {args.delay_ms:g} ms apart"
        )
        print(f"  ideal stream time {ideal:.1f} s")
        print(
            f"  direct : ok {direct['ok']}, errors {direct['errors']}, "
            f"done in {direct['elapsed_s']} s"
        )
        print(
            f"  gateway: ok {via['ok']}, errors {via['errors']} {via['error_kinds'] or ''}, "
            f"done in {via['elapsed_s']} s (x{ratio:.2f} of direct)"
        )
        print(
            f"  gateway RSS: idle {idle / 1024:.1f} MiB, peak {via['peak_rss_kb'] / 1024:.1f} MiB, "
            f"after {after / 1024:.1f} MiB: {per_stream:.1f} KiB per open stream"
        )
        print(
            "OPENSTREAMSJSON "
            + json.dumps(
                {
                    "direct": direct,
                    "gateway": via,
                    "idle_rss_kb": idle,
                    "after_rss_kb": after,
                    "kib_per_stream": round(per_stream, 1),
                }
            )
        )
    finally:
        if gateway is not None:
            stop(gateway)
        stop(upstream)


if __name__ == "__main__":
    main()
