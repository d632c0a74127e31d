"""The limits policy alone, in process: CPU per request for admit + settle, a key with every
limit (one level), then a key, its owner and its team each with every limit and a money
budget (three levels, priced), 16 requests at a time; in process memory, and in Redis when
REDIS_URL is set, next to redis-py's asyncio client running the same script (why
limits/redis_client.py exists); on a Redis Cluster with ``--cluster URL`` (any one node), next
to redis-py's asyncio ``RedisCluster`` (why limits/redis_cluster.py exists).

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/limits_cost.py [--requests N]
        [--cluster redis://127.0.0.1:7000/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
import uvloop  # noqa: E402

from llm_gateway.core import GatewayRequest, Principal, RequestRecord  # noqa: E402
from llm_gateway.core.cost import Price  # noqa: E402
from llm_gateway.limits import LimitsOptions, LimitsPolicy  # noqa: E402
from llm_gateway.limits.redis_store import ADMIT  # noqa: E402
from llm_gateway.limits.spec import Limits, Scope  # noqa: E402

LIMITS = Limits(rpm=10**9, tpm=10**9, max_parallel=10**6, models=("fake-*",), token_budget=10**15)
SCOPES = (Scope("key", "bench000", "bench", LIMITS, "kbench000"),)
MONEY = Limits(rpm=10**9, tpm=10**9, max_parallel=10**6, token_budget=10**15, cost_budget=10**15)
LEVELS = (
    Scope("key", "bench000", "bench", MONEY, "u1"),
    Scope("user", "1", "bench-user", MONEY, "u1"),
    Scope("team", "1", "bench-team", MONEY, "t1"),
)
PRICE = Price("fake-*", Decimal("0.15"), Decimal("0.075"), Decimal("0.60"), 1)
BODY = b'{"model":"fake-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32}'


async def policy_cost(
    requests: int, redis_url: str, scopes: tuple[Scope, ...] = SCOPES, cluster: bool = False
) -> float:
    options = LimitsOptions(redis_url=redis_url, redis_cluster=cluster, namespace="bench")
    policy = LimitsPolicy(options)
    principal = Principal(1, "bench", "bench000", scopes)
    price = PRICE if scopes is LEVELS else None
    payload = orjson.loads(BODY)

    async def one() -> None:
        request = GatewayRequest(
            "POST", "/chat/completions", b"", [], BODY, "r", principal, payload=payload
        )
        record = RequestRecord("r", "POST", "/chat/completions", principal)
        record.price = price
        admission = await policy.admit(request, record)
        assert admission is not None
        record.prompt_tokens, record.completion_tokens, record.ttfb = 5, 7, 0.1
        if price is not None:
            record.cost_micro = price.micro_cost(5, 0, 7)
        admission.settle(record)

    async def worker() -> None:
        for _ in range(requests // 16):
            await one()

    await one()
    started = time.process_time()
    await asyncio.gather(*[worker() for _ in range(16)])
    await asyncio.sleep(0.1)  # the settles' replies
    cost = (time.process_time() - started) / requests
    await policy.aclose()
    return cost


async def redis_py_cost(url: str, calls: int, cluster: bool = False) -> float:
    import redis.asyncio as redis

    client = (redis.RedisCluster if cluster else redis.Redis).from_url(url)
    script = client.register_script(ADMIT.source)
    args = [60, 30000, "w:1000000000:0", "1", "bench"]
    await script(keys=["bench:{t}:redis-py"], args=args)

    async def worker() -> None:
        for _ in range(calls // 16):
            await script(keys=["bench:{t}:redis-py"], args=args)

    started = time.process_time()
    await asyncio.gather(*[worker() for _ in range(16)])
    cost = (time.process_time() - started) / calls
    await client.aclose()
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=16_000)
    parser.add_argument("--cluster", default="", help="a Redis Cluster node's URL")
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL", "")
    memory = uvloop.run(policy_cost(args.requests, ""))
    print(f"limits in memory: {memory * 1e6:.1f} us CPU per request (admit + settle)")
    levels = uvloop.run(policy_cost(args.requests, "", LEVELS))
    print(
        f"three levels in memory, money budgets priced: {levels * 1e6:.1f} us "
        f"(x{levels / memory:.2f} one level)"
    )
    if not url:
        print("REDIS_URL is not set: Redis skipped")
    else:
        single_node_cost(args.requests, url)
    if args.cluster:
        cluster_cost(args.requests, args.cluster)


def single_node_cost(requests: int, url: str) -> None:
    shared = uvloop.run(policy_cost(requests, url))
    print(f"limits in Redis:  {shared * 1e6:.1f} us CPU per request (admit + settle)")
    levels = uvloop.run(policy_cost(requests, url, LEVELS))
    print(
        f"three levels in Redis, money budgets priced: {levels * 1e6:.1f} us "
        f"(x{levels / shared:.2f} one level)"
    )
    redis_py = uvloop.run(redis_py_cost(url, requests))
    print(f"redis-py asyncio: {redis_py * 1e6:.1f} us CPU per EVALSHA")


def cluster_cost(requests: int, url: str) -> None:
    one = uvloop.run(policy_cost(requests, url, cluster=True))
    print(f"limits on a Redis Cluster: {one * 1e6:.1f} us CPU per request (admit + settle)")
    levels = uvloop.run(policy_cost(requests, url, LEVELS, cluster=True))
    print(
        f"three levels on a Redis Cluster (two slots), money budgets priced: "
        f"{levels * 1e6:.1f} us (x{levels / one:.2f} one level)"
    )
    redis_py = uvloop.run(redis_py_cost(url, requests, cluster=True))
    print(f"redis-py asyncio RedisCluster: {redis_py * 1e6:.1f} us CPU per EVALSHA")


if __name__ == "__main__":
    main()
