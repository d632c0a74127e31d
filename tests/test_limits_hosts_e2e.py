"""Several machines: two gateway hosts, each in a network namespace of its own with its own
address, sharing one database and one Redis on this machine. The limits hold across them, a
revocation reaches both, and one drains while the other serves. (The drain test ends the
first host: it runs last.)"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal

import httpx
import pytest

from llm_gateway.models import ApiKey

from . import netns, servers
from .conftest import database_url
from .waiting import wait_until

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


def test_a_revocation_is_seen_by_both_hosts(hosts):
    key_row, key = ApiKey.create(f"hosts-revoke-{os.urandom(3).hex()}")

    def status(gateway):
        return httpx.post(
            gateway.api + "/chat/completions",
            json=CHAT,
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).status_code

    assert [status(g) for g in hosts] == [200, 200]
    key_row.revoke()
    for gateway in hosts:  # how soon: bench/propagation.py (the bound only catches a hang)
        assert wait_until(lambda gateway=gateway: status(gateway) == 401, 30)


def test_one_host_drains_while_the_other_serves(hosts):
    draining, serving = hosts
    _, key = ApiKey.create(f"hosts-drain-{os.urandom(3).hex()}")
    headers = {"Authorization": f"Bearer {key}", "X-Fake-Delay-Ms": "50", "X-Fake-Chunks": "30"}
    body = {**CHAT, "stream": True}

    async def run():
        async with httpx.AsyncClient(timeout=30) as client:

            async def stream():
                async with client.stream(
                    "POST", draining.api + "/chat/completions", json=body, headers=headers
                ) as response:
                    return response.status_code, "".join([t async for t in response.aiter_text()])

            streams = [asyncio.ensure_future(stream()) for _ in range(6)]
            await asyncio.sleep(0.3)
            draining.process.send_signal(signal.SIGTERM)
            served = []
            for _ in range(20):  # the other host, meanwhile
                answer = await client.post(
                    serving.api + "/chat/completions",
                    json=CHAT,
                    headers={"Authorization": f"Bearer {key}"},
                )
                served.append(answer.status_code)
            return await asyncio.gather(*streams), served

    streams, served = asyncio.run(run())
    assert served == [200] * 20
    assert all(code == 200 and text.rstrip().endswith("[DONE]") for code, text in streams)
    assert draining.process.wait(10) == 0
