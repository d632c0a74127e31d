"""Does prefix affinity pay? Two llama.cpp replicas (SmolLM2-135M, prompt cache on, one
thread each) behind one gateway, the same workloads under each routing policy. The prompt
cache (llama-cpp-python's RAM cache of evaluated states, ``--cache-mb`` per replica) is
what a real engine's prefix cache is: finite. At the default it holds about five of the
conversations' states (18 MB each), fewer than the eight conversations, as a GPU's KV cache
holds a limited number of long prefixes.

- ``chats``: 8 conversations of 6 turns at once, each turn resending its growing history
  behind a system prompt of its own (about 600 tokens);
- ``fresh``: the same number of single requests, none sharing a prefix.

For each: time to the first token (median, p90) as the openai client sees it, and how many
requests each replica served. The replicas restart between policies (empty caches).

    .venv/bin/python bench/routing_ttft.py [--policies round_robin,prefix_affinity]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KEY = "sk-00000000-benchbenchbenchbenchbenchbenchbenchbenchben"
REPLICA_PORTS = (8111, 8112)
GATEWAY_PORT = 8110
WORDS = [
    "river",
    "stone",
    "lantern",
    "orchard",
    "harbour",
    "meadow",
    "copper",
    "violet",
    "thunder",
    "willow",
]


def system_prompt(conversation: int, words: int = 450) -> str:
    rotated = WORDS[conversation % len(WORDS) :] + WORDS[: conversation % len(WORDS)]
    body = " ".join(rotated[i % len(rotated)] for i in range(words))
    return f"You are assistant {conversation}. Remember these words: {body}."


def wait_http(url: str, timeout: float = 120.0, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers or {}), timeout=2
            ):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def start_replicas(workdir: Path, cache_mb: int) -> list[subprocess.Popen[bytes]]:
    from llm_gateway.local_engine import engine_argv, engine_environment

    replicas = []
    for port in REPLICA_PORTS:
        argv = engine_argv("127.0.0.1", port)
        argv[argv.index("--n_threads") + 1] = "1"  # one core each
        argv[argv.index("--n_ctx") + 1] = "8192"
        argv += ["--cache", "True", "--cache_size", str(cache_mb << 20)]
        replicas.append(start(argv, workdir / f"replica-{port}.log", engine_environment()))
    for port in REPLICA_PORTS:
        wait_http(f"http://127.0.0.1:{port}/v1/models")
    return replicas


def start_gateway(workdir: Path, policy: str) -> subprocess.Popen[bytes]:
    upstreams = [
        {"url": f"http://127.0.0.1:{port}/v1", "name": f"replica-{port}"} for port in REPLICA_PORTS
    ]
    env = dict(
        os.environ,
        FAKE_UPSTREAM_URL="unused",
        BENCH_VAR=str(workdir / f"gateway-{policy}"),
        LLM_GATEWAY_UPSTREAMS=json.dumps(upstreams),
        LLM_GATEWAY_ROUTING=policy,
        LLM_GATEWAY_REQUEST_LOG="false",
        LLM_GATEWAY_UPSTREAM_REQUEST_ID_HEADER="X-Gateway-Request-Id",
    )
    process = start(
        ["bash", "bench/start_gateway.sh", str(GATEWAY_PORT), KEY],
        workdir / f"gw-{policy}.log",
        env,
    )
    wait_http(
        f"http://127.0.0.1:{GATEWAY_PORT}/v1/models", headers={"Authorization": f"Bearer {KEY}"}
    )
    return process


async def first_token(client, messages: list[dict[str, str]]) -> tuple[float, str]:
    started = time.perf_counter()
    ttft, text = None, []
    stream = await client.chat.completions.create(
        model="SmolLM2-135M-Instruct",
        messages=messages,
        stream=True,
        max_tokens=12,
        temperature=0,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            ttft = ttft or time.perf_counter() - started
            text.append(chunk.choices[0].delta.content)
    return (ttft or time.perf_counter() - started), "".join(text)


async def chats(client, conversations: int, turns: int) -> list[float]:
    async def conversation(index: int) -> list[float]:
        history = [{"role": "system", "content": system_prompt(index)}]
        times = []
        for turn in range(turns):
            history.append({"role": "user", "content": f"Question {turn}: name one word."})
            ttft, text = await first_token(client, history)
            times.append(ttft)
            history.append({"role": "assistant", "content": text or "ok"})
        return times

    results = await asyncio.gather(*(conversation(i) for i in range(conversations)))
    return [t for times in results for t in times]


async def fresh(client, requests: int, concurrency: int) -> list[float]:
    queue = list(range(requests))

    async def worker() -> list[float]:
        times = []
        while queue:
            index = queue.pop()
            prompt = f"{index} {system_prompt(index * 7 + 3, 120)} Say one word."
            times.append((await first_token(client, [{"role": "user", "content": prompt}]))[0])
        return times

    results = await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [t for times in results for t in times]


def served_per_replica() -> dict[str, int]:
    request = urllib.request.Request(f"http://127.0.0.1:{GATEWAY_PORT}/metrics")
    counts: dict[str, int] = {}
    for line in urllib.request.urlopen(request, timeout=5).read().decode().splitlines():
        if line.startswith("llm_gateway_requests_total{"):
            upstream = line.split('upstream="', 1)[1].split('"', 1)[0]
            if upstream:
                counts[upstream] = counts.get(upstream, 0) + int(float(line.rsplit(" ", 1)[1]))
    return counts


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", default="round_robin,least_outstanding,prefix_affinity")
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--cache-mb", type=int, default=100, help="prompt cache per replica")
    parser.add_argument("--workloads", default="chats,fresh")
    args = parser.parse_args()
    import openai

    workdir = Path("/tmp/llm-gateway-routing-ttft")
    workdir.mkdir(exist_ok=True)
    rows = []
    for workload in args.workloads.split(","):
        for policy in args.policies.split(","):
            replicas = start_replicas(workdir, args.cache_mb)
            gateway = start_gateway(workdir, policy)
            try:
                client = openai.AsyncOpenAI(
                    base_url=f"http://127.0.0.1:{GATEWAY_PORT}/v1",
                    api_key=KEY,
                    max_retries=0,
                    timeout=300,
                )
                n = args.conversations * args.turns
                started = time.perf_counter()
                if workload == "chats":
                    times = asyncio.run(chats(client, args.conversations, args.turns))
                else:
                    times = asyncio.run(fresh(client, n, args.conversations))
                elapsed = time.perf_counter() - started
                counts = sorted(served_per_replica().values())
                row = (workload, policy, statistics.median(times), p90(times), elapsed, counts)
                rows.append(row)
                print(
                    f"{workload:6} {policy:18} TTFT median {row[2] * 1000:7.0f} ms  p90 "
                    f"{row[3] * 1000:7.0f} ms  total {elapsed:5.1f} s  per replica {counts}",
                    flush=True,
                )
            finally:
                for process in [gateway, *replicas]:
                    process.send_signal(signal.SIGINT)
                for process in [gateway, *replicas]:
                    try:
                        process.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        process.kill()
    print("\n| workload | policy | TTFT median ms | TTFT p90 ms | total s | requests per replica |")
    print("| --- | --- | --- | --- | --- | --- |")
    for workload, policy, median, ninety, elapsed, counts in rows:
        print(
            f"| {workload} | {policy} | {median * 1000:.0f} | {ninety * 1000:.0f} | "
            f"{elapsed:.1f} | {' / '.join(map(str, counts))} |"
        )


if __name__ == "__main__":
    main()
