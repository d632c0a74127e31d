"""Fair share of a saturated engine, the scheduler off (FIFO, every request sent at once)
against on, in one run:

    .venv/bin/python bench/fair_share.py [--seconds 20] [--fair-seconds 60] [--out docs/]

In front of the engine simulator (tests/engine_simulator.py: ``--slots`` slots, first come
first served beyond them, a prefill delay per prompt token and a decode delay per output
token, vLLM's /metrics), one gateway process per scenario and setting, on its own SQLite file:

- **interactive under a batch flood**: tenant B sends interactive streamed chats at 10% of
  the engine's capacity (evenly spaced); its time to first token, p50 and p99, alone, then
  under tenant A's batch flood (10 times the engine's slots in requests kept outstanding,
  plain answers, started ``--warmup`` seconds before B) with FIFO, then with the scheduler.
  A's tokens per second under each, the
  share of time the engine had a free slot while the gateway held work, and the most
  requests ever waiting inside the engine.
- **fairness**: two backlogged tenants of equal share offering 10:1 (requests kept
  outstanding), then shares 3:1: the weighted tokens (input x1 + output x2) each was served in
  every window, and their ratio.

Writes ``fair_share_ttft.svg`` (B's time to first token over time under the flood, FIFO
against the scheduler) to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
MODEL = "sim-model"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Setup:
    """The simulator, and a gateway (scheduler on or off) with one key per tenant."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.engine_port = free_port()
        self.engine = subprocess.Popen(
            [
                PYTHON,
                str(ROOT / "tests" / "engine_simulator.py"),
                "--port",
                str(self.engine_port),
                "--slots",
                str(args.slots),
                "--decode-ms-per-token",
                str(args.decode_ms),
                "--prefill-ms-per-token",
                str(args.prefill_ms),
                "--model",
                MODEL,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.engine_port)
        self.gateway: subprocess.Popen[bytes] | None = None
        self.keys: dict[str, str] = {}

    def start_gateway(self, scheduler: bool, tenants: dict[str, dict[str, Any]]) -> int:
        port = free_port()
        var = self.workdir / f"gateway-{port}"
        var.mkdir()
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="project.settings",
            LLM_GATEWAY_VAR_DIR=str(var),
            LLM_GATEWAY_UPSTREAM_URL="",
            LLM_GATEWAY_UPSTREAMS=json.dumps(
                [
                    {
                        "url": f"http://127.0.0.1:{self.engine_port}/v1",
                        "models": [MODEL],
                        # its slots: nothing waits inside it, the gateway orders everything
                        "max_in_flight": self.args.slots // self.args.processes,
                    }
                ]
            ),
            LLM_GATEWAY_SCHEDULER="on" if scheduler else "off",
            LLM_GATEWAY_ACCESS_LOG="false",
            LLM_GATEWAY_REQUEST_LOG=os.environ.get("FS_REQUEST_LOG", "false"),
            LLM_GATEWAY_QUEUE_MAX="100000",
            LLM_GATEWAY_BATCH_HEADROOM=str(self.args.headroom),
            LLM_GATEWAY_LIMITS_NAMESPACE=f"fair-share-{port}",  # counters of this run alone
        )
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        made = subprocess.run(
            [PYTHON, "-c", MAKE_KEYS, json.dumps(tenants)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        self.keys = json.loads(made.stdout.strip().splitlines()[-1])
        log = open(self.workdir / f"gateway-{port}.log", "wb")  # noqa: SIM115
        self.gateway = subprocess.Popen(
            [PYTHON, "-m", "llm_gateway.run", "-v", "0", "-b", "127.0.0.1", "-p", str(port)]
            + ["--workers", str(self.args.processes)]
            + ["project.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_port(port)
        time.sleep(1.5)  # the first reading of the engine's /metrics
        return port

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.terminate()
            self.gateway.wait(30)
            self.gateway = None

    def close(self) -> None:
        self.stop_gateway()
        self.engine.terminate()
        self.engine.wait(10)


MAKE_KEYS = """
import json, sys, django
django.setup()
from django.contrib.auth.models import User
from llm_gateway.models import ApiKey, UserLimits
out = {}
for name, fields in json.loads(sys.argv[1]).items():
    owner, _ = User.objects.get_or_create(username=f"tenant-{name}")
    share = fields.pop("share", None)
    if share:
        UserLimits.objects.update_or_create(user=owner, defaults={"share": share})
    key, raw = ApiKey.create(f"tenant-{name}", owner=owner)
    ApiKey.objects.filter(pk=key.pk).update(**fields)
    out[name] = raw
print(json.dumps(out))
"""


def chat(tokens: int, stream: bool, words: int = 20) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": " ".join(["word"] * words)}],
        "max_tokens": tokens,
        "stream": stream,
    }


class Served:
    """Weighted tokens served per tenant, by the second they completed in."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, int]] = []  # (time, tenant, weighted tokens)


async def keep_busy(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    tenant: str,
    outstanding: int,
    until: float,
    served: Served,
    tokens: int,
    priority: str = "batch",
) -> None:
    """``outstanding`` plain requests at all times until ``until``, of ``tokens`` output
    tokens on average (from half to one and a half times: requests of one length would end
    together, in convoys, as no real workload does)."""
    headers = {"Authorization": f"Bearer {key}", "X-Gateway-Priority": priority}
    lengths = random.Random(tenant)

    async def worker() -> None:
        while time.monotonic() < until:
            body = chat(lengths.randint(tokens // 2, tokens * 3 // 2), False)
            try:
                async with session.post(url, json=body, headers=headers) as response:
                    answer = await response.json(content_type=None)
            except (TimeoutError, aiohttp.ClientError):
                continue
            usage = answer.get("usage") if isinstance(answer, dict) else None
            if response.status == 200 and usage:
                weighted = usage["prompt_tokens"] + 2 * usage["completion_tokens"]
                served.events.append((time.monotonic(), tenant, weighted))

    await asyncio.gather(*(worker() for _ in range(outstanding)))


async def interactive(
    session: aiohttp.ClientSession, url: str, key: str, rate: float, until: float
) -> list[tuple[float, float]]:
    """Streamed chats every 1/rate seconds until ``until``: (sent at, time to first token)."""
    headers = {
        "Authorization": f"Bearer {key}",
        "X-Gateway-Priority": "interactive",
        "X-Tenant": "B",
    }
    results: list[tuple[float, float]] = []

    async def one(sent: float) -> None:
        async with session.post(url, json=chat(8, True), headers=headers) as response:
            async for line in response.content:
                if line.startswith(b"data: {") and b'"content": "t' in line:
                    results.append((sent, time.monotonic() - sent))
                    break
            async for _ in response.content.iter_any():
                pass

    tasks = []
    started = time.monotonic()
    n = 0
    while (sent := started + n / rate) < until:
        await asyncio.sleep(max(0.0, sent - time.monotonic()))
        tasks.append(asyncio.ensure_future(one(time.monotonic())))
        n += 1
    await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def engine_watch(port: int, slots: int, until: float) -> dict[str, float]:
    """Samples the engine every 50 ms: how often it had more free slots than ``slots`` says
    may be free (the batch headroom, with the scheduler on) while the flood kept it busy."""
    idle = busy = 0
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < until:
            async with session.get(f"http://127.0.0.1:{port}/_sim/stats") as r:
                stats = await r.json()
            if stats["running"] < slots:  # a slot the scheduler could have filled
                idle += 1
            busy += 1
            await asyncio.sleep(0.05)
        async with session.get(f"http://127.0.0.1:{port}/_sim/stats") as r:
            stats = await r.json()
    return {"free_slot_share": idle / max(1, busy), "max_waiting": stats["max_waiting"]}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def flood_scenario(setup: Setup, scheduler: bool, flood: bool) -> dict[str, Any]:
    args = setup.args
    tenants = {"A": {"priority": "batch"}, "B": {"max_priority": "interactive"}}
    port = setup.start_gateway(scheduler, tenants)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    await reset(setup.engine_port)
    capacity = args.slots / (args.tokens * args.decode_ms / 1000)  # requests per second
    served = Served()
    try:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            # B's key is known to the gateway before it is measured (its first use reads the
            # key from the database: a cost of a key's first request, not of the scheduler).
            await interactive(session, url, setup.keys["B"], 1.0, time.monotonic() + 0.5)
            start = time.monotonic() + args.warmup
            until = start + args.seconds
            flooding = None
            if flood:  # the flood first: B is measured once it is steady
                flooding = asyncio.ensure_future(
                    keep_busy(
                        session,
                        url,
                        setup.keys["A"],
                        "A",
                        10 * args.slots,
                        until,
                        served,
                        args.tokens,
                    )
                )
            await asyncio.sleep(start - time.monotonic())
            results = await asyncio.gather(
                interactive(session, url, setup.keys["B"], 0.1 * capacity, until),
                engine_watch(
                    setup.engine_port, args.slots - (args.headroom if scheduler else 0), until
                ),
            )
            if flooding is not None:
                await flooding
    finally:
        setup.stop_gateway()
    ttft = results[0]
    seconds = args.seconds
    a_tokens = sum(w for t, who, w in served.events if who == "A" and start <= t <= until)
    return {
        "ttft": [(sent - start, value) for sent, value in ttft],
        "p50": quantile([v for _, v in ttft], 0.5),
        "p99": quantile([v for _, v in ttft], 0.99),
        "count": len(ttft),
        "a_weighted_tokens_per_s": a_tokens / seconds,
        **results[1],
    }


async def fairness_scenario(setup: Setup, scheduler: bool, shares: tuple[int, int]) -> dict:
    args = setup.args
    tenants = {"X": {"share": shares[0]}, "Y": {"share": shares[1]}}
    port = setup.start_gateway(scheduler, tenants)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    served = Served()
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=600)
        ) as session:
            start = time.monotonic()
            until = start + args.fair_seconds
            heavy, light = 10 * args.slots, args.slots  # offering 10:1, both backlogged
            await asyncio.gather(
                keep_busy(
                    session, url, setup.keys["X"], "X", heavy, until, served, args.tokens, "default"
                ),
                keep_busy(
                    session, url, setup.keys["Y"], "Y", light, until, served, args.tokens, "default"
                ),
            )
    finally:
        setup.stop_gateway()
    windows = []
    window = args.window
    for begin in range(0, int(args.fair_seconds - window) + 1, int(window)):
        lo, hi = start + begin, start + begin + window
        x = sum(w for t, who, w in served.events if who == "X" and lo <= t < hi)
        y = sum(w for t, who, w in served.events if who == "Y" and lo <= t < hi)
        windows.append((x, y))
    return {"windows": windows, "ratios": [x / y if y else float("inf") for x, y in windows]}


async def reset(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        await session.post(f"http://127.0.0.1:{port}/_sim/reset")


def svg_plot(series: dict[str, list[tuple[float, float]]], path: Path, seconds: float) -> None:
    """B's time to first token over time, one dot per request, a colour per setting."""
    width, height, left, bottom = 720, 360, 60, 40
    top = max((v for points in series.values() for _, v in points), default=1.0) * 1.05
    colours = {"FIFO (scheduler off)": "#d62728", "scheduler on": "#1f77b4", "alone": "#2ca02c"}

    def x(t: float) -> float:
        return left + (width - left - 20) * t / seconds

    def y(v: float) -> float:
        return height - bottom - (height - bottom - 20) * v / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{left}" y1="{y(0)}" x2="{width - 20}" y2="{y(0)}" stroke="black"/>',
        f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="20" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">seconds into the run</text>',
        f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" '
        f'text-anchor="middle">B time to first token (s)</text>',
    ]
    for i in range(5):
        value = top * i / 4
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4}" text-anchor="end">{value:.2f}</text>'
        )
    for i in range(5):
        t = seconds * i / 4
        parts.append(f'<text x="{x(t)}" y="{y(0) + 16}" text-anchor="middle">{t:.0f}</text>')
    for n, (name, points) in enumerate(series.items()):
        colour = colours.get(name, "#555")
        for t, v in points:
            parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2" fill="{colour}"/>')
        parts.append(
            f'<text x="{left + 10}" y="{height / 2 + 16 * n}" fill="{colour}">{name}</text>'
        )
    parts.append("</svg>")
    path.write_text("\n".join(parts))


async def flood_report(setup: Setup, args: argparse.Namespace) -> None:
    alone = await flood_scenario(setup, True, flood=False)
    fifo = await flood_scenario(setup, False, flood=True)
    fair = await flood_scenario(setup, True, flood=True)
    for name, r in (("alone", alone), ("FIFO", fifo), ("scheduler", fair)):
        a_rate = r["a_weighted_tokens_per_s"]
        print(
            f"B ttft {name:9}: p50 {r['p50'] * 1000:8.1f} ms  p99 {r['p99'] * 1000:8.1f} ms"
            f"  ({r['count']} streams)  A weighted tokens/s {a_rate:8.0f}"
            f"  engine free slot {r['free_slot_share']:.1%}  max waiting in engine"
            f" {r['max_waiting']}"
        )
    print(
        f"scheduler p99 / alone p99: x{fair['p99'] / alone['p99']:.2f}; "
        f"scheduler p99 / FIFO p99: x{fair['p99'] / fifo['p99']:.3f}; A tokens/s "
        f"scheduler / FIFO: "
        f"x{fair['a_weighted_tokens_per_s'] / fifo['a_weighted_tokens_per_s']:.3f}"
    )
    svg_plot(
        {"FIFO (scheduler off)": fifo["ttft"], "scheduler on": fair["ttft"]},
        Path(args.out) / "fair_share_ttft.svg",
        args.seconds,
    )


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(args, Path(tmp))
        try:
            print(
                f"engine: {args.slots} slots, batch requests of {args.tokens} output tokens on"
                f" average x {args.decode_ms} ms; batch headroom {args.headroom} slot(s);"
                f" {args.processes} gateway process(es)"
            )
            if args.only != "fairness":
                await flood_report(setup, args)
            if args.only == "flood":
                return
            for label, scheduler, shares in (
                ("FIFO, equal shares", False, (1, 1)),
                ("scheduler, equal shares", True, (1, 1)),
                ("scheduler, shares 3:1", True, (3, 1)),
            ):
                result = await fairness_scenario(setup, scheduler, shares)
                ratios = ", ".join(f"{r:.2f}" for r in result["ratios"])
                print(f"fairness {label:24}: X/Y weighted tokens per {args.window:.0f} s: {ratios}")
        finally:
            setup.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--fair-seconds", type=float, default=60)
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="gateway processes (the launcher's --workers), each with max_in_flight slots/N; "
        "with REDIS_URL set they share the fair-share counters",
    )
    parser.add_argument(
        "--only", choices=("flood", "fairness"), default=None, help="one scenario of the two"
    )
    parser.add_argument("--warmup", type=float, default=3, help="seconds of flood before B")
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument(
        "--headroom", type=int, default=1, help="LLM_GATEWAY_BATCH_HEADROOM (scheduler on)"
    )
    parser.add_argument("--tokens", type=int, default=40, help="output tokens of a batch request")
    parser.add_argument("--decode-ms", type=float, default=5)
    parser.add_argument("--prefill-ms", type=float, default=0.2)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
