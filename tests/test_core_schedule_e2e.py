"""The gateway queue end to end: a real daphne in front of the engine simulator
(tests/engine_simulator.py: one slot, first come first served beyond it, vLLM's /metrics).
Not timings: who reached the engine, in what order, and what the waiting clients got."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import httpx
import pytest

from llm_gateway.models import ApiKey

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "sim-model"


def simulator(tmp, slots: int = 1, decode_ms: float = 20) -> servers.Server:
    port = servers.free_port()
    argv = [
        servers.sys.executable,
        str(servers.ROOT / "tests" / "engine_simulator.py"),
        "--port",
        str(port),
        "--slots",
        str(slots),
        "--decode-ms-per-token",
        str(decode_ms),
        "--model",
        MODEL,
    ]
    return servers.Server(argv, port, {}, tmp / f"engine-simulator-{port}.log")


@pytest.fixture(scope="module")
def engine(server_logs):
    server = simulator(server_logs).start()
    yield server
    server.stop()


def start_gateway(gateway_env, server_logs, engine, face="fast", replica=None, **env):
    replica = {"url": engine.url + "/v1", "models": [MODEL], "max_in_flight": 1, **(replica or {})}
    settings = {
        **gateway_env,
        "LLM_GATEWAY_UPSTREAMS": json.dumps([replica]),
        "LLM_GATEWAY_UPSTREAM_URL": "",
        "LLM_GATEWAY_ENGINE_METRICS_INTERVAL": "0.2",
        **env,
    }
    return servers.daphne(server_logs, settings, face=face).start()


@pytest.fixture(scope="module", params=["fast", "django"])
def gateway(request, gateway_env, server_logs, engine):
    server = start_gateway(gateway_env, server_logs, engine, face=request.param)
    yield server
    server.stop()


@pytest.fixture
def sim(engine):
    httpx.post(engine.url + "/_sim/reset")

    def arrived() -> list[dict]:
        return httpx.get(engine.url + "/_sim/requests").json()

    return arrived


def key(**fields) -> str:
    api_key, raw = ApiKey.create(f"sched-{time.monotonic_ns()}")
    if fields:
        ApiKey.objects.filter(pk=api_key.pk).update(**fields)
    return raw


def body(tokens: int = 5, stream: bool = False) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": tokens,
        "stream": stream,
    }


async def post(server, raw, tenant="", priority=None, tokens=5, timeout=30.0):
    headers = {"Authorization": f"Bearer {raw}", "X-Tenant": tenant}
    if priority:
        headers["X-Gateway-Priority"] = priority
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(
            server.api + "/chat/completions", json=body(tokens), headers=headers
        )


def test_classes_reach_the_engine_best_first(gateway, sim):
    """The slot is held by a long request; batch, default and interactive requests then wait
    at the gateway (not in the engine) and reach it best class first."""
    raw = key(max_priority="interactive")

    async def go():
        holder = asyncio.ensure_future(post(gateway, raw, "holder", tokens=40))
        assert await asyncio.to_thread(wait_until, lambda: len(sim()) == 1, 10)
        waiting = []
        for priority in ("batch", "default", "interactive"):
            waiting.append(asyncio.ensure_future(post(gateway, raw, priority, priority)))
            await asyncio.sleep(0.15)
        answers = await asyncio.gather(holder, *waiting)
        return answers

    answers = asyncio.run(go())
    assert [a.status_code for a in answers] == [200] * 4
    assert [r["tenant"] for r in sim()] == ["holder", "interactive", "default", "batch"]


def test_a_class_above_the_keys_cap_is_lowered_not_refused(gateway, sim):
    raw = key()  # default class, capped at default

    async def go():
        holder = asyncio.ensure_future(post(gateway, raw, "holder", tokens=40))
        assert await asyncio.to_thread(wait_until, lambda: len(sim()) == 1, 10)
        first = asyncio.ensure_future(post(gateway, raw, "default"))
        await asyncio.sleep(0.15)
        second = asyncio.ensure_future(post(gateway, raw, "asked-interactive", "interactive"))
        return await asyncio.gather(holder, first, second)

    assert [a.status_code for a in asyncio.run(go())] == [200] * 3
    assert [r["tenant"] for r in sim()] == ["holder", "default", "asked-interactive"]


def test_an_unknown_class_is_a_400_naming_the_header(gateway, sim):
    answer = asyncio.run(post(gateway, key(), priority="urgent"))
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "X-Gateway-Priority"
    assert sim() == []


def test_a_client_that_leaves_while_waiting_never_reaches_the_engine(gateway, sim):
    raw = key()

    async def go():
        holder = asyncio.ensure_future(post(gateway, raw, "holder", tokens=60))
        assert await asyncio.to_thread(wait_until, lambda: len(sim()) == 1, 10)
        with pytest.raises(httpx.ReadTimeout):
            await post(gateway, raw, "impatient", timeout=0.3)
        return await holder

    assert asyncio.run(go()).status_code == 200
    time.sleep(0.3)  # had it been dispatched when the slot freed, it would be here by now
    assert [r["tenant"] for r in sim()] == ["holder"]


def test_the_engine_queue_stays_under_the_threshold_while_the_gateway_holds_work(
    gateway, sim, engine
):
    raw = key()

    async def go():
        return await asyncio.gather(*(post(gateway, raw, f"r{i}", tokens=2) for i in range(12)))

    assert [a.status_code for a in asyncio.run(go())] == [200] * 12
    assert len(sim()) == 12
    assert httpx.get(engine.url + "/_sim/stats").json()["max_waiting"] <= 1


def test_health_lists_each_replicas_signals(gateway, sim):
    def read() -> dict:
        return httpx.get(gateway.api.removesuffix("/v1") + "/health").json()

    assert wait_until(lambda: read()["replicas"][0]["load"]["signal"] == "read", 10)
    load = read()["replicas"][0]["load"]
    assert load["max_in_flight"] == 1 and load["engine_waiting"] == 0.0
    assert read()["queue"] == 0


def test_queue_full_and_queue_timeout(gateway_env, server_logs, engine, sim):
    gateway = start_gateway(
        gateway_env,
        server_logs,
        engine,
        LLM_GATEWAY_QUEUE_MAX="1",
        LLM_GATEWAY_QUEUE_TIMEOUT="0.5",
    )
    try:
        raw = key()

        async def go():
            holder = asyncio.ensure_future(post(gateway, raw, "holder", tokens=60))
            assert await asyncio.to_thread(wait_until, lambda: len(sim()) == 1, 10)
            waiting = asyncio.ensure_future(post(gateway, raw, "waits"))
            await asyncio.sleep(0.1)
            full = await post(gateway, raw, "full")
            return full, await waiting, await holder

        full, timed_out, holder = asyncio.run(go())
        assert holder.status_code == 200
        for answer, code in ((full, "queue_full"), (timed_out, "queue_timeout")):
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == code
            assert int(answer.headers["retry-after"]) >= 1
        assert [r["tenant"] for r in sim()] == ["holder"]
        scrape = httpx.get(gateway.url + "/metrics").text
        assert (
            f'llm_gateway_queue_rejections_total{{code="queue_full",model="{MODEL}"}} 1.0' in scrape
        )
        assert 'llm_gateway_replica_saturated{upstream="' in scrape
    finally:
        gateway.stop()


@pytest.mark.parametrize("face", ["fast", "django"])
def test_the_drain_answers_waiting_requests_server_shutting_down(
    gateway_env, server_logs, engine, sim, face
):
    gateway = start_gateway(gateway_env, server_logs, engine, face=face)
    try:
        raw = key()

        async def go():
            holder = asyncio.ensure_future(post(gateway, raw, "holder", tokens=50))
            assert await asyncio.to_thread(wait_until, lambda: len(sim()) == 1, 10)
            waiting = asyncio.ensure_future(post(gateway, raw, "waits"))
            await asyncio.sleep(0.2)
            gateway.process.send_signal(signal.SIGTERM)
            return await waiting, await holder

        waiting, holder = asyncio.run(go())
        assert holder.status_code == 200  # the one in flight finishes
        assert waiting.status_code == 503
        assert waiting.json()["error"]["code"] == "server_shutting_down"
        assert [r["tenant"] for r in sim()] == ["holder"]
    finally:
        gateway.stop()


def test_with_the_scheduler_off_everything_goes_to_the_engine_at_once(
    gateway_env, server_logs, engine, sim
):
    gateway = start_gateway(gateway_env, server_logs, engine, LLM_GATEWAY_SCHEDULER="off")
    try:
        raw = key()

        async def go():
            return await asyncio.gather(*(post(gateway, raw, f"r{i}", tokens=2) for i in range(6)))

        assert [a.status_code for a in asyncio.run(go())] == [200] * 6
        assert httpx.get(engine.url + "/_sim/stats").json()["max_waiting"] >= 3
    finally:
        gateway.stop()
