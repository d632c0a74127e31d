"""The limits on a Redis Cluster, end to end: three masters and their replicas (private
redis-servers, the cluster made by ``redis-cli --cluster create``), two gateway processes with
``LLM_GATEWAY_REDIS_CLUSTER=true`` and ``REDIS_URL`` naming one node. Limits are exact across
the processes, on one slot (a key) and across two (a team's key: its own counters and its
team's); a master killed mid-load: the configured failure mode holds during the outage, its
replica takes over, and the limits are exact again on it, nothing counted twice."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time

import pytest
import redis
from redis.crc import key_slot

from llm_gateway.models import ApiKey

from . import servers
from .test_limits_e2e import CHAT, burst, count, new_key, post, team_keys
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def role_of(port: int) -> str:
    try:
        return redis.Redis(port=port, socket_timeout=1).execute_command("ROLE")[0].decode()
    except redis.RedisError:
        return "down"


def master_of(ports: list[int], slot: int) -> int:
    """The port of the master serving ``slot``, as a live node sees it."""
    for port in ports:
        try:
            slots = redis.Redis(port=port, socket_timeout=1).execute_command("CLUSTER SLOTS")
        except redis.RedisError:
            continue
        for start, end, master, *_ in slots:
            if start <= slot <= end:
                return int(master[1])
    raise AssertionError("no node answered CLUSTER SLOTS")


@pytest.fixture(scope="module")
def cluster(server_logs):
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("no redis-server/redis-cli on this machine (apt-get install redis-server)")
    nodes: list[servers.Server] = []
    try:
        nodes += [servers.redis_cluster_node(server_logs).start() for _ in range(6)]
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "1"],
            input=b"yes\n",
            check=True,
            capture_output=True,
            timeout=60,
        )

        def ready() -> bool:
            info = redis.Redis(port=nodes[0].port).execute_command("CLUSTER INFO")
            return info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == 6

        assert wait_until(ready, 30), "the cluster did not come up"
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture(scope="module")
def gateways(gateway_env, server_logs, cluster):
    env = {
        **gateway_env,
        "LLM_GATEWAY_REDIS_URL": f"redis://127.0.0.1:{cluster[0].port}/0",
        "LLM_GATEWAY_REDIS_CLUSTER": "true",
        "LLM_GATEWAY_LIMITS_FAIL": "closed",
    }
    first = servers.daphne(server_logs, env).start()
    second = servers.daphne(server_logs, env).start()
    yield first, second
    first.stop()
    second.stop()


def counted(ports: list[int], counter: str) -> int:
    """What the cluster counted in a requests-per-minute window."""
    client = redis.Redis(port=master_of(ports, key_slot(counter.encode())))
    return sum(int(v) for v in client.hgetall(counter).values())


def key_counter(name: str, gateways) -> str:
    key = ApiKey.objects.get(name=name)
    tag = f"u{key.owner_id}" if key.owner_id else f"k{key.prefix}"
    return f"{namespace(gateways)}:{{{tag}}}:key:{key.prefix}:requests"


def namespace(gateways) -> str:
    return gateways[0].env["LLM_GATEWAY_LIMITS_NAMESPACE"]


def test_limits_are_exact_across_two_processes_on_a_cluster(cluster, gateways):
    name = f"c-{os.urandom(4).hex()}"
    raw = ApiKey.create(name, rpm=30)[1]
    for server in gateways:
        assert wait_until(lambda server=server: post(server, raw).status_code == 200, 15)
    results = asyncio.run(burst(gateways, raw, 90))
    assert count(results, 200) == 28 and count(results, 429) == 62  # 2 spent above
    assert counted([n.port for n in cluster], key_counter(name, gateways)) == 30
    parallel = asyncio.run(
        burst(
            gateways,
            ApiKey.create(f"p-{os.urandom(4).hex()}", max_parallel=4)[1],
            40,
            {**CHAT, "stream": True},
            **{"X-Fake-Delay-Ms": "400"},
        )
    )
    assert count(parallel, 200) == 4 and count(parallel, 429) == 36


def test_tokens_and_a_token_budget_are_exact_across_two_processes_on_a_cluster(gateways):
    body = {**CHAT, "max_tokens": 99}  # reserves 100 each; answers after half a second
    tokens = asyncio.run(burst(gateways, new_key(tpm=1000), 30, body, **{"X-Fake-Sleep-Ms": "500"}))
    assert count(tokens, 200) == 10 and count(tokens, 429) == 20
    budget = new_key(token_budget=500)
    results = asyncio.run(burst(gateways, budget, 20, body, **{"X-Fake-Sleep-Ms": "500"}))
    assert count(results, 200) == 5 and count(results, 429) == 15
    assert all(
        r.json()["error"]["code"] == "insufficient_quota" for r in results if r.status_code == 429
    )
    # Settled to the usage on the cluster (5 x 12 used): 4 more of 100 fit, not 5.
    time.sleep(0.5)  # the settles, sent as each answer ended
    again = asyncio.run(burst(gateways, budget, 10, body, **{"X-Fake-Sleep-Ms": "500"}))
    assert count(again, 200) == 4


def test_a_team_s_key_touches_two_slots_and_a_refusal_gives_back_the_other(cluster, gateways):
    ports = [n.port for n in cluster]
    team, raws = team_keys(2, rpm=20)
    names = list(ApiKey.objects.filter(team=team).values_list("name", flat=True))
    ApiKey.objects.filter(team=team).update(rpm=1000)  # the key's own limit, never reached
    team_counter = f"{namespace(gateways)}:{{t{team.pk}}}:team:{team.pk}:requests"
    key_slots = {key_slot(key_counter(name, gateways).encode()) for name in names}
    assert key_slot(team_counter.encode()) not in key_slots  # two slots a request
    results = asyncio.run(burst(gateways, raws, 60))
    assert count(results, 200) == 20 and count(results, 429) == 40
    assert all(
        f"team {team.name}" in r.json()["error"]["message"]
        for r in results[20:]
        if r.status_code == 429
    )
    assert counted(ports, team_counter) == 20

    def given_back() -> bool:  # the refused requests' reservations at the keys, released
        return sum(counted(ports, key_counter(name, gateways)) for name in names) == 20

    assert wait_until(given_back, 5)


def node_id(port: int) -> str:
    return redis.Redis(port=port).execute_command("CLUSTER MYID").decode()


def move_slot(ports: list[int], slot: int, source: int, target: int) -> None:
    """What ``redis-cli --cluster reshard`` does for one slot: importing at the target,
    migrating at the source, every key moved, then the slot the target's everywhere."""
    src, dst = redis.Redis(port=source), redis.Redis(port=target)
    dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", node_id(source))
    src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", node_id(target))
    while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
        src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
    for port in ports:
        if role_of(port) == "master":
            redis.Redis(port=port).execute_command("CLUSTER SETSLOT", slot, "NODE", node_id(target))


def test_a_slot_moved_to_another_master_is_followed_and_counted_once(cluster, gateways):
    ports = [n.port for n in cluster]
    name = f"m-{os.urandom(4).hex()}"
    raw = ApiKey.create(name, rpm=40)[1]
    slot = key_slot(key_counter(name, gateways).encode())
    for server in gateways:  # both processes know the slot's master
        assert wait_until(lambda server=server: post(server, raw).status_code == 200, 15)
    assert count(asyncio.run(burst(gateways, raw, 8)), 200) == 8
    source = master_of(ports, slot)
    target = next(port for port in ports if role_of(port) == "master" and port != source)
    move_slot(ports, slot, source, target)
    assert master_of(ports, slot) == target
    # Both processes still send to the old master: MOVED, followed; nothing lost or doubled.
    results = asyncio.run(burst(gateways, raw, 60))
    assert count(results, 200) == 30 and count(results, 429) == 30
    assert counted(ports, key_counter(name, gateways)) == 40
    assert redis.Redis(port=source).execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0


def test_a_master_killed_fails_closed_then_its_replica_counts_exactly(cluster, gateways):
    ports = [n.port for n in cluster]
    name = f"f-{os.urandom(4).hex()}"
    raw = ApiKey.create(name, rpm=1000)[1]
    victim_port = master_of(ports, key_slot(key_counter(name, gateways).encode()))
    victim = next(n for n in cluster if n.port == victim_port)
    assert post(gateways[0], raw).status_code == 200
    victim.stop(signal.SIGKILL)
    refused = post(gateways[0], raw)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "limits_unavailable"
    # Its replica takes its slots; both processes find it by themselves.
    live = [port for port in ports if port != victim_port]
    slot = key_slot(key_counter(name, gateways).encode())
    assert wait_until(lambda: master_of(live, slot) != victim_port, 30), "no failover"
    promoted = master_of(live, slot)
    for server in gateways:
        assert wait_until(lambda server=server: post(server, raw).status_code == 200, 15)
    # Exact again on the promoted node, across both processes; nothing counted twice.
    while True:  # a key whose counters live on the promoted node
        after = f"a-{os.urandom(4).hex()}"
        fresh = ApiKey.create(after, rpm=25)[1]
        if master_of(live, key_slot(key_counter(after, gateways).encode())) == promoted:
            break
    results = asyncio.run(burst(gateways, fresh, 75))
    assert count(results, 200) == 25 and count(results, 429) == 50
    assert counted(live, key_counter(after, gateways)) == 25
    # The old master back: it rejoins as a replica; the limits stay where they are.
    victim.start()
    assert wait_until(lambda: role_of(victim_port) == "slave", 30)
    assert count(asyncio.run(burst(gateways, fresh, 10)), 429) == 10
    assert counted(live, key_counter(after, gateways)) == 25
