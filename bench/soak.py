"""A soak: one gateway process under mixed traffic for a long run, sampled every 10 s.

    .venv/bin/pip install -r bench/requirements.txt   # matplotlib, for the plot
    .venv/bin/python bench/soak.py [--minutes 10] [--plot docs/soak.png]

Traffic, all at once, through the fast face in front of the fake engine (tests/fake_upstream.py),
with the request log on (SQLite) and limits in process memory (Redis when REDIS_URL is set):

- plain: chat completions, not streamed
- streams: paced streams (50 chunks, 20 ms apart), read to the end
- disconnects: paced streams left at a random moment, half of them with a reset
- errors: answers the engine refuses (400, 429, 500), bad JSON, a wrong key, a body too large
- limited: a key with a limit of 60 requests a minute, asked four times a second
- realtime: WebSocket sessions (a response.create, its response.done, a close)

Each outcome is checked: a 200 whose body is whole, or exactly the error expected, OpenAI-shaped.
Anything else counts as unexpected. Every 10 s: the gateway's RSS, open file descriptors,
its open connections to the engine, the event loop's lag (as the latency of GET /live, the
cheapest request: p50 and max of 20), and the counts. The series go to a JSON file and a PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import websockets
from local_gateway import engine_and_gateway  # bench/, this script's directory

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-00000000-soaksoaksoaksoaksoaksoaksoaksoaksoaksoaksoa"
ENGINE_PORT, GATEWAY_PORT = 9130, 8130
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**CHAT, "stream": True}
PACED = {"X-Fake-Chunks": "50", "X-Fake-Delay-Ms": "20"}
WORKDIR = Path("/tmp/llm-gateway-soak")


class Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.unexpected: list[str] = []

    def ok(self, kind: str) -> None:
        self.counts[kind] += 1

    def bad(self, kind: str, what: str) -> None:
        self.counts["unexpected"] += 1
        if len(self.unexpected) < 50:
            self.unexpected.append(f"{kind}: {what[:300]}")


def openai_error(response: httpx.Response, status: int) -> bool:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return response.status_code == status and {"message", "type", "param", "code"} <= set(error)


async def plain(client: httpx.AsyncClient, tally: Tally, stop: float) -> None:
    while time.monotonic() < stop:
        try:
            r = await client.post("/v1/chat/completions", json=CHAT)
            if r.status_code == 200 and r.json()["choices"][0]["message"]["content"]:
                tally.ok("plain")
            else:
                tally.bad("plain", f"{r.status_code} {r.text}")
        except Exception as exc:  # every failure is counted, the soak goes on
            tally.bad("plain", repr(exc))


async def streams(client: httpx.AsyncClient, tally: Tally, stop: float) -> None:
    while time.monotonic() < stop:
        try:
            body = b""
            async with client.stream(
                "POST", "/v1/chat/completions", json=STREAM, headers=PACED
            ) as r:
                async for chunk in r.aiter_raw():
                    body += chunk
            if r.status_code == 200 and body.endswith(b"data: [DONE]\n\n") and b"error" not in body:
                tally.ok("stream")
            else:
                tally.bad("stream", f"{r.status_code} {body[-200:]!r}")
        except Exception as exc:
            tally.bad("stream", repr(exc))


async def disconnects(tally: Tally, stop: float, rng: random.Random) -> None:
    body = json.dumps(STREAM).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY}\r\n"
        "X-Fake-Chunks: 50\r\nX-Fake-Delay-Ms: 20\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", GATEWAY_PORT)
            writer.write(head + body)
            try:
                await asyncio.wait_for(reader.read(1 << 16), rng.uniform(0, 0.8))
                await asyncio.sleep(rng.uniform(0, 0.4))
            except TimeoutError:
                pass
            if rng.random() < 0.5:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()
            tally.ok("disconnect")
        except Exception as exc:
            tally.bad("disconnect", repr(exc))


ERRORS: list[tuple[str, dict[str, Any], int]] = [
    # (what, request, the status the client must get)
    ("engine 400", {"headers": {"X-Fake-Status": "400"}}, 400),
    ("engine 429", {"headers": {"X-Fake-Status": "429"}}, 429),
    ("engine 500", {"headers": {"X-Fake-Status": "500", "X-Fake-Error": "text"}}, 502),
    ("bad json", {"content": b'{"model": '}, 400),
    ("wrong key", {"headers": {"Authorization": "Bearer sk-wrong"}}, 401),
    ("too large", {"content": b"x" * 70_000}, 413),
]


async def errors(client: httpx.AsyncClient, tally: Tally, stop: float) -> None:
    index = 0
    while time.monotonic() < stop:
        what, request, status = ERRORS[index % len(ERRORS)]
        index += 1
        try:
            kwargs = dict(request)
            if "content" not in kwargs:
                kwargs["json"] = CHAT
            r = await client.post("/v1/chat/completions", **kwargs)
            if openai_error(r, status):
                tally.ok("error")
            else:
                tally.bad("error", f"{what}: {r.status_code} {r.text}")
        except Exception as exc:
            tally.bad("error", f"{what}: {exc!r}")
        await asyncio.sleep(0.05)


async def limited(client: httpx.AsyncClient, key: str, tally: Tally, stop: float) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < stop:
        try:
            r = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
            if r.status_code == 200:
                tally.ok("limited: served")
            elif openai_error(r, 429) and r.headers.get("retry-after"):
                tally.ok("limited: refused")
            else:
                tally.bad("limited", f"{r.status_code} {r.text}")
        except Exception as exc:
            tally.bad("limited", repr(exc))
        await asyncio.sleep(0.25)


async def realtime(tally: Tally, stop: float) -> None:
    url = f"ws://127.0.0.1:{GATEWAY_PORT}/v1/realtime?model=fake-model"
    auth = {"Authorization": f"Bearer {KEY}"}
    while time.monotonic() < stop:
        try:
            async with websockets.connect(url, additional_headers=auth) as ws:
                await ws.send(json.dumps({"type": "response.create"}))
                kinds = []
                while "response.done" not in kinds:
                    kinds.append(json.loads(await asyncio.wait_for(ws.recv(), 5))["type"])
            tally.ok("realtime")
        except Exception as exc:
            tally.bad("realtime", repr(exc))
        await asyncio.sleep(0.1)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def engine_connections(pid: int) -> int:
    """The process's established TCP connections to the engine's port."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == ENGINE_PORT and fields[3] == "01" and fields[9] in inodes:
            count += 1
    return count


async def sample(
    client: httpx.AsyncClient, pid: int, tally: Tally, started: float
) -> dict[str, Any]:
    lags = []
    for _ in range(20):
        begun = time.perf_counter()
        await client.get("/live")
        lags.append((time.perf_counter() - begun) * 1000)
    return {
        "t": round(time.monotonic() - started, 1),
        "rss_mib": round(rss_mib(pid), 2),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "engine_connections": engine_connections(pid),
        "live_ms_p50": round(statistics.median(lags), 2),
        "live_ms_max": round(max(lags), 2),
        "counts": dict(tally.counts),
    }


async def soak(minutes: float, pid: int, limited_key: str, series: list[dict[str, Any]]) -> Tally:
    tally, rng = Tally(), random.Random(17)
    started = time.monotonic()
    stop = started + minutes * 60
    auth = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    base = f"http://127.0.0.1:{GATEWAY_PORT}"
    async with (
        httpx.AsyncClient(base_url=base, headers=auth, timeout=30, limits=limits) as client,
        httpx.AsyncClient(base_url=base, timeout=30) as probe,
    ):
        traffic = [
            *(plain(client, tally, stop) for _ in range(4)),
            *(streams(client, tally, stop) for _ in range(20)),
            *(disconnects(tally, stop, rng) for _ in range(4)),
            errors(client, tally, stop),
            limited(client, limited_key, tally, stop),
            *(realtime(tally, stop) for _ in range(2)),
        ]
        tasks = [asyncio.ensure_future(t) for t in traffic]
        series.append(await sample(probe, pid, tally, started))
        while time.monotonic() < stop:
            await asyncio.sleep(10 - (time.monotonic() - started) % 10)
            point = await sample(probe, pid, tally, started)
            series.append(point)
            print(json.dumps(point), flush=True)
        await asyncio.gather(*tasks)
        await asyncio.sleep(2)  # the last disconnects settle
        series.append(await sample(probe, pid, tally, started))
    return tally


def plot(series: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [p["t"] / 60 for p in series]
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    axes[0].plot(t, [p["rss_mib"] for p in series], color="tab:blue")
    axes[0].set_ylabel("RSS (MiB)")
    axes[0].set_ylim(bottom=0)
    axes[1].plot(t, [p["fds"] for p in series], label="open file descriptors")
    axes[1].plot(t, [p["engine_connections"] for p in series], label="connections to the engine")
    axes[1].set_ylim(bottom=0)
    axes[1].legend(loc="lower right")
    axes[2].plot(t, [p["live_ms_p50"] for p in series], label="p50")
    axes[2].plot(t, [p["live_ms_max"] for p in series], label="max")
    axes[2].set_ylabel("GET /live (ms)\n(event loop lag)")
    axes[2].legend(loc="upper right")
    kinds = sorted({k for p in series for k in p["counts"] if k != "unexpected"})
    for kind in kinds:
        axes[3].plot(t, [p["counts"].get(kind, 0) for p in series], label=kind)
    axes[3].plot(t, [p["counts"].get("unexpected", 0) for p in series], "k--", label="unexpected")
    axes[3].set_ylabel("outcomes (cumulative)")
    axes[3].set_yscale("symlog")
    axes[3].legend(loc="upper left", fontsize=7, ncol=2)
    axes[3].set_xlabel("minutes")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def create_limited_key(env: dict[str, str]) -> str:
    name = f"soak-limited-{os.getpid()}"
    out = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", name, "--rpm", "60"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--plot", default=str(ROOT / "docs" / "soak.png"))
    args = parser.parse_args()
    series: list[dict[str, Any]] = []
    with engine_and_gateway(
        WORKDIR,
        ENGINE_PORT,
        GATEWAY_PORT,
        KEY,
        LLM_GATEWAY_VAR_DIR=str(WORKDIR / "gateway"),
        LLM_GATEWAY_MAX_BODY_BYTES="65536",
        DJANGO_SETTINGS_MODULE="project.settings",
    ) as (gateway, env):
        limited_key = create_limited_key(env)
        time.sleep(1)  # past the key cache
        tally = asyncio.run(soak(args.minutes, gateway.pid, limited_key, series))
    (WORKDIR / "series.json").write_text(json.dumps(series, indent=1))
    first, last = series[1], series[-1]  # after the first 10 s of warm-up
    print(f"\n{args.minutes:g} minutes; samples in {WORKDIR / 'series.json'}")
    print(f"  outcomes: {dict(sorted(tally.counts.items()))}")
    for line in tally.unexpected:
        print(f"  unexpected: {line}")
    for name in ("rss_mib", "fds", "engine_connections"):
        values = [p[name] for p in series[1:]]
        print(
            f"  {name}: at 10 s {first[name]}, at the end {last[name]}, "
            f"min {min(values)}, max {max(values)}"
        )
    lags = [p["live_ms_p50"] for p in series[1:]]
    print(f"  GET /live p50 per sample: min {min(lags)} ms, max {max(lags)} ms")
    title = f"llm_gateway soak: {args.minutes:g} min of mixed traffic, one process"
    try:
        plot(series, Path(args.plot), title)
        print(f"  plot: {args.plot}")
    except ImportError:
        print("  no plot: pip install -r bench/requirements.txt (matplotlib)")


if __name__ == "__main__":
    main()
