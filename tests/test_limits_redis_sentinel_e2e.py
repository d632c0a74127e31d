"""The limits behind Redis Sentinel, end to end: a primary, its replica and three sentinels
(private redis-servers), two gateway processes with ``REDIS_URL=redis+sentinel://…``. Limits
are exact across the processes; the primary killed mid-load: the configured failure mode
holds during the outage, the sentinels promote the replica, and the limits are exact again
on it, nothing counted twice."""

from __future__ import annotations

import asyncio
import shutil
import signal

import pytest
import redis

from llm_gateway.models import ApiKey

from . import servers
from .test_limits_e2e import CHAT, burst, count, new_key, post
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def role_of(port: int) -> str:
    try:
        return redis.Redis(port=port, socket_timeout=1).execute_command("ROLE")[0].decode()
    except redis.RedisError:
        return "down"


@pytest.fixture(scope="module")
def topology(server_logs):
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on this machine (apt-get install redis-server)")
    primary = servers.redis_server(server_logs).start()
    replica = servers.redis_replica(server_logs, primary).start()
    sentinels = [servers.redis_sentinel(server_logs, primary).start() for _ in range(3)]

    def ready() -> bool:
        info = redis.Redis(port=primary.port).info("replication")
        known = [
            redis.Redis(port=s.port).execute_command("SENTINEL", "REPLICAS", "mymaster")
            for s in sentinels
        ]
        return info.get("connected_slaves") == 1 and all(known)

    assert wait_until(ready, 20), "the replica or the sentinels did not come up"
    yield primary, replica, sentinels
    for server in (*sentinels, replica, primary):
        server.stop()


@pytest.fixture(scope="module")
def gateways(gateway_env, server_logs, topology):
    _, _, sentinels = topology
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
    env = {
        **gateway_env,
        "LLM_GATEWAY_REDIS_URL": f"redis+sentinel://{hosts}/mymaster/0",
        "LLM_GATEWAY_LIMITS_FAIL": "closed",
    }
    first = servers.daphne(server_logs, env).start()
    second = servers.daphne(server_logs, env).start()
    yield first, second
    first.stop()
    second.stop()


def window_total(port: int, key: str) -> int:
    """What Redis counted in a key's requests-per-minute window."""
    prefix = ApiKey.objects.get(name=key).prefix
    client = redis.Redis(port=port)
    (counter,) = client.keys(f"*:key:{prefix}:requests")
    return sum(int(v) for v in client.hgetall(counter).values())


def test_limits_are_exact_across_two_processes_through_sentinel(gateways):
    for server in gateways:
        wait_until(lambda server=server: post(server, new_key(rpm=100)).status_code == 200)
    results = asyncio.run(burst(gateways, new_key(rpm=30), 90))
    assert count(results, 200) == 30 and count(results, 429) == 60
    parallel = asyncio.run(
        burst(
            gateways,
            new_key(max_parallel=4),
            40,
            {**CHAT, "stream": True},
            **{"X-Fake-Delay-Ms": "400"},
        )
    )
    assert count(parallel, 200) == 4 and count(parallel, 429) == 36
    budget = asyncio.run(
        burst(
            gateways,
            new_key(token_budget=500),
            20,
            {**CHAT, "max_tokens": 99},
            **{"X-Fake-Sleep-Ms": "500"},
        )
    )
    assert count(budget, 200) == 5 and count(budget, 429) == 15


def test_the_primary_killed_fails_closed_then_the_replica_counts_exactly(topology, gateways):
    primary, replica, _ = topology
    name = f"failover-{primary.port}"
    _, raw = ApiKey.create(name, rpm=1000)
    assert post(gateways[0], raw).status_code == 200
    primary.stop(signal.SIGKILL)
    # The outage: fail closed, as configured (a 503, never served uncounted).
    refused = post(gateways[0], raw)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "limits_unavailable"
    # The sentinels promote the replica; both processes find it by themselves.
    assert wait_until(lambda: role_of(replica.port) == "master", 30), "no failover"
    for server in gateways:
        assert wait_until(lambda server=server: post(server, raw).status_code == 200, 15)
    # Exact again, on the new master, across both processes; nothing counted twice.
    after = f"after-{primary.port}"
    _, fresh = ApiKey.create(after, rpm=25)
    results = asyncio.run(burst(gateways, fresh, 75))
    assert count(results, 200) == 25 and count(results, 429) == 50
    assert window_total(replica.port, after) == 25
    # The old primary back: it rejoins as a replica, and the limits stay on the new master.
    primary.start()
    assert wait_until(lambda: role_of(primary.port) == "slave", 30)
    more = asyncio.run(burst(gateways, fresh, 10))
    assert count(more, 429) == 10
    assert window_total(replica.port, after) == 25
