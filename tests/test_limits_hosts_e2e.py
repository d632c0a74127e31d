"""The limits hold across machines: two gateway hosts, each in a network namespace of its own
with its own address, sharing one database and one Redis on this machine."""

from __future__ import annotations

import asyncio
import os
import shutil

import httpx
import pytest

from llm_gateway.models import ApiKey

from . import netns, servers
from .conftest import database_url

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def hosts(server_logs, gateway_env):
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(f"two hosts need network namespaces: {reason}")
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on this machine (apt-get install redis-server)")
    with netns.Network(2) as network:
        here = network.gateway_ip
        upstream = servers.fake_upstream(server_logs, host=here).start()
        redis = servers.redis_server(server_logs, host=here).start()
        url = database_url()
        forward = None
        if url.startswith("postgres"):  # PostgreSQL listens on 127.0.0.1: carried to the bridge
            port = servers.free_port()
            forward = netns.Forward(here, port, "127.0.0.1", 5432).__enter__()
            url = url.replace("127.0.0.1:5432", f"{here}:{port}")
        env = {
            **gateway_env,
            "DATABASE_URL": url,
            "LLM_GATEWAY_UPSTREAM_URL": upstream.url + "/v1",
            "LLM_GATEWAY_REDIS_URL": f"redis://{here}:{redis.port}/0",
            "DJANGO_ALLOWED_HOSTS": ",".join(network.addresses),
        }
        gateways = [
            servers.daphne(server_logs, env, 8000, host=address, netns=host).start()
            for host, address in zip(network.hosts, network.addresses, strict=True)
        ]
        try:
            yield gateways
        finally:
            for gateway in gateways:
                gateway.stop()
            redis.stop()
            upstream.stop()
            if forward is not None:
                forward.__exit__()


async def burst(gateways, key, n, body=None, **headers):
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=n)) as client:
        return await asyncio.gather(
            *(
                client.post(
                    gateways[i % 2].api + "/chat/completions",
                    json=body or CHAT,
                    headers={"Authorization": f"Bearer {key}", **headers},
                )
                for i in range(n)
            )
        )


def test_two_hosts_each_on_its_own_address(hosts):
    assert hosts[0].host != hosts[1].host and {h.port for h in hosts} == {8000}
    for gateway in hosts:
        _, key = ApiKey.create(f"probe-{os.urandom(3).hex()}")
        answer = httpx.post(
            gateway.api + "/chat/completions",
            json=CHAT,
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text


def test_requests_per_minute_hold_across_hosts(hosts):
    _, key = ApiKey.create(f"hosts-rpm-{os.urandom(3).hex()}", rpm=30)
    results = asyncio.run(burst(hosts, key, 90))
    statuses = [r.status_code for r in results]
    assert statuses.count(200) == 30 and statuses.count(429) == 60
    assert {r.headers["x-ratelimit-limit-requests"] for r in results} == {"30"}


def test_requests_in_flight_hold_across_hosts(hosts):
    _, key = ApiKey.create(f"hosts-par-{os.urandom(3).hex()}", max_parallel=4)
    body = {**CHAT, "stream": True}
    results = asyncio.run(burst(hosts, key, 40, body, **{"X-Fake-Delay-Ms": "400"}))
    statuses = [r.status_code for r in results]
    assert statuses.count(200) == 4 and statuses.count(429) == 36
