"""Several engines behind one gateway, end to end: fake engines serving chosen models, one
daphne in front, routed by model and balanced by each policy, with failover and ejection."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import httpx
import pytest

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def chat(model: str, content: str = "hi", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture(scope="module")
def engines(server_logs):
    """a serves m1; b serves m1 and m2; c serves m3 (as their /models say)."""
    started = {
        name: servers.fake_upstream(server_logs, models=models).start()
        for name, models in (("a", "m1"), ("b", "m1,m2"), ("c", "m3"))
    }
    yield started
    for engine in started.values():
        engine.stop()


def replicas(engines, names="abc", configured=True, **extra):
    models = {"a": ["m1"], "b": ["m1", "m2"], "c": ["m3"]}
    return json.dumps(
        [
            {
                "url": engines[n].url + "/v1",
                "name": n,
                **({"models": models[n]} if configured else {}),
                **extra,
            }
            for n in names
        ]
    )


def start_gateway(gateway_env, server_logs, upstreams, **env):
    settings = {
        **gateway_env,
        "LLM_GATEWAY_UPSTREAMS": upstreams,
        "LLM_GATEWAY_UPSTREAM_URL": "",
        **env,
    }
    return servers.daphne(server_logs, settings).start()


def served(engines) -> dict[str, int]:
    """Client requests each engine saw since the last reset (watchdog probes left out)."""
    counts = {}
    for name, engine in engines.items():
        seen = httpx.get(engine.url + "/_fake/requests").json()
        counts[name] = sum(
            1 for r in seen if r["headers"].get("user-agent") != "llm-gateway-watchdog"
        )
    return counts


def reset(engines) -> None:
    for engine in engines.values():
        httpx.post(engine.url + "/_fake/reset")
        httpx.post(engine.url + "/_fake/status", json={"status": 0})


def post(gateway, key, body, **headers):
    return httpx.post(
        gateway.api + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=15,
    )


async def concurrently(gateway, key, bodies, **headers):
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(
                    gateway.api + "/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {key}", **headers},
                )
                for body in bodies
            )
        )


@pytest.fixture(scope="module")
def routed(engines, gateway_env, server_logs):
    gateway = start_gateway(gateway_env, server_logs, replicas(engines))
    yield gateway
    gateway.stop()


def test_requests_go_to_the_replicas_of_their_model(routed, engines, api_key):
    reset(engines)
    for model in ("m2", "m3", "m1", "m1", "m1", "m1"):
        assert post(routed, api_key, chat(model)).status_code == 200
    counts = served(engines)
    assert counts["c"] == 1 and counts["b"] >= 1 and counts["a"] + counts["b"] == 5
    unknown = post(routed, api_key, chat("nope"))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    assert "The model `nope` does not exist" in unknown.json()["error"]["message"]


def test_the_model_list_is_the_union_each_once(routed, engines, api_key):
    listing = httpx.get(routed.api + "/models", headers={"Authorization": f"Bearer {api_key}"})
    assert listing.status_code == 200
    assert [m["id"] for m in listing.json()["data"]] == ["m1", "m2", "m3"]


def test_discovered_models_route_too(engines, gateway_env, server_logs, api_key):
    gateway = start_gateway(
        gateway_env,
        server_logs,
        replicas(engines, configured=False),
        LLM_GATEWAY_WATCHDOG_INTERVAL="0.2",
    )
    try:
        reset(engines)
        # Once each watchdog has read its replica's /models, m3 goes to c alone.
        assert wait_until(lambda: post(gateway, api_key, chat("m3")).status_code == 200, 5)
        time.sleep(0.5)
        reset(engines)
        for _ in range(4):
            assert post(gateway, api_key, chat("m3")).status_code == 200
        assert served(engines) == {"a": 0, "b": 0, "c": 4}
        assert post(gateway, api_key, chat("nope")).status_code == 404
    finally:
        gateway.stop()


def test_least_outstanding_spreads_open_streams(routed, engines, api_key):
    reset(engines)
    body = chat("m1", stream=True)
    results = asyncio.run(concurrently(routed, api_key, [body] * 6, **{"X-Fake-Delay-Ms": "100"}))
    assert all(r.status_code == 200 for r in results)
    assert served(engines) == {"a": 3, "b": 3, "c": 0}


def test_round_robin_takes_each_in_turn(engines, gateway_env, server_logs, api_key):
    gateway = start_gateway(
        gateway_env, server_logs, replicas(engines, "ab"), LLM_GATEWAY_ROUTING="round_robin"
    )
    try:
        reset(engines)
        for _ in range(6):
            assert post(gateway, api_key, chat("m1")).status_code == 200
        assert served(engines) == {"a": 3, "b": 3, "c": 0}
    finally:
        gateway.stop()


def test_prefix_affinity_keeps_conversations_and_bounds_the_load(
    engines, gateway_env, server_logs, api_key
):
    gateway = start_gateway(
        gateway_env, server_logs, replicas(engines, "ab"), LLM_GATEWAY_ROUTING="prefix_affinity"
    )
    try:
        homes: dict[int, set[str]] = {}
        for conversation in range(8):
            history = [{"role": "system", "content": f"You are assistant number {conversation}."}]
            for turn in range(3):
                history.append({"role": "user", "content": f"turn {turn}"})
                reset(engines)
                body = {"model": "m1", "messages": history}
                assert post(gateway, api_key, body).status_code == 200
                counts = served(engines)
                homes.setdefault(conversation, set()).add(max(counts, key=counts.get))
                history.append({"role": "assistant", "content": "ok"})
        assert all(len(home) == 1 for home in homes.values()), homes  # each stays put
        assert {next(iter(h)) for h in homes.values()} == {"a", "b"}  # and they spread
        # One prefix, 12 slow requests at once: bounded loads send some to the other replica.
        reset(engines)
        same = chat("m1", "the same prompt for everyone", stream=True)
        results = asyncio.run(
            concurrently(gateway, api_key, [same] * 12, **{"X-Fake-Delay-Ms": "100"})
        )
        assert all(r.status_code == 200 for r in results)
        counts = served(engines)
        assert sorted([counts["a"], counts["b"]])[0] >= 12 - 8, counts  # at most ceil(1.25*12/2)
        # A session id overrides the prompt: one session, one replica.
        reset(engines)
        for turn in range(4):
            post(gateway, api_key, chat("m1", f"different {turn}"), **{"X-Session-Id": "s-1"})
        assert sorted(served(engines).values()) == [0, 0, 4]
    finally:
        gateway.stop()


def test_a_dead_replica_costs_no_request(engines, gateway_env, server_logs, api_key):
    spare = servers.fake_upstream(server_logs, models="m1").start()
    pair = {"a": engines["a"], "spare": spare}
    upstreams = json.dumps(
        [{"url": e.url + "/v1", "name": n, "models": ["m1"]} for n, e in pair.items()]
    )
    gateway = start_gateway(gateway_env, server_logs, upstreams, LLM_GATEWAY_EJECT_SECONDS="30")
    try:
        for _ in range(4):
            assert post(gateway, api_key, chat("m1")).status_code == 200

        async def load_while_killing():
            slow = {"X-Fake-Sleep-Ms": "300"}  # in flight on both when one dies
            burst = asyncio.ensure_future(concurrently(gateway, api_key, [chat("m1")] * 12, **slow))
            await asyncio.sleep(0.15)
            spare.stop(signal.SIGKILL)  # mid-run: its open requests are reset
            return await burst

        results = asyncio.run(load_while_killing())
        results += [post(gateway, api_key, chat("m1")) for _ in range(6)]  # refused now
        assert [r.status_code for r in results] == [200] * 18
        metrics = httpx.get(gateway.url + "/metrics").text
        assert 'llm_gateway_upstream_failovers_total{upstream="spare"}' in metrics
        health = httpx.get(gateway.url + "/health").json()
        spare_state = next(r for r in health["replicas"] if r["name"] == "spare")
        # Out of rotation: its watchdog (woken by the refused connection) found it dead, or
        # its breaker ejected it, whichever came first.
        assert spare_state["state"] == "dead" or spare_state["circuit"] == "open", spare_state
        assert spare_state["failures"] >= 1 and spare_state["in_flight"] == 0
        assert health["status"] == "ok"
    finally:
        gateway.stop()
        spare.stop()


def test_a_5xx_is_retried_elsewhere_and_ejects_then_a_trial_brings_it_back(
    engines, gateway_env, server_logs, api_key
):
    gateway = start_gateway(
        gateway_env,
        server_logs,
        replicas(engines, "ab"),
        LLM_GATEWAY_ROUTING="round_robin",
        LLM_GATEWAY_EJECT_SECONDS="0.5",
    )
    try:
        reset(engines)
        httpx.post(engines["a"].url + "/_fake/status", json={"status": 503})
        results = [post(gateway, api_key, chat("m1")) for _ in range(8)]
        assert [r.status_code for r in results] == [200] * 8
        counts = served(engines)
        assert counts["a"] == 3  # three failures in a row eject it: no more requests
        state = next(
            r for r in httpx.get(gateway.url + "/health").json()["replicas"] if r["name"] == "a"
        )
        assert state["circuit"] == "open" and state["failures"] == 3
        time.sleep(0.6)
        post(gateway, api_key, chat("m1"))  # the trial fails: ejected for twice as long
        post(gateway, api_key, chat("m1"))
        assert served(engines)["a"] == 4
        httpx.post(engines["a"].url + "/_fake/status", json={"status": 0})
        time.sleep(1.1)
        for _ in range(4):
            assert post(gateway, api_key, chat("m1")).status_code == 200
        assert served(engines)["a"] >= 5  # the trial succeeded: back in rotation
        state = next(
            r for r in httpx.get(gateway.url + "/health").json()["replicas"] if r["name"] == "a"
        )
        assert state["circuit"] == "closed" and state["failures"] == 0
        # A 4xx is the answer: never retried.
        reset(engines)
        refused = post(gateway, api_key, chat("m1"), **{"X-Fake-Status": "400"})
        assert refused.status_code == 400 and sum(served(engines).values()) == 1
    finally:
        gateway.stop()


def test_all_replicas_down(engines, gateway_env, server_logs, api_key):
    first = servers.fake_upstream(server_logs, models="m1").start()
    second = servers.fake_upstream(server_logs, models="m1").start()
    upstreams = json.dumps(
        [
            {"url": e.url + "/v1", "name": n, "models": ["m1"]}
            for n, e in (("x", first), ("y", second))
        ]
    )
    gateway = start_gateway(
        gateway_env, server_logs, upstreams, LLM_GATEWAY_WATCHDOG_INTERVAL="0.2"
    )
    try:
        assert httpx.get(gateway.url + "/health").status_code == 200
        first.stop()
        second.stop()
        down = post(gateway, api_key, chat("m1"))
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "engine_unavailable"
        health = wait_until(lambda: httpx.get(gateway.url + "/health").status_code == 503, 5)
        assert health, httpx.get(gateway.url + "/health").json()
        body = httpx.get(gateway.url + "/health").json()
        assert body["status"] == "error" and {r["name"] for r in body["replicas"]} == {"x", "y"}
        assert all(r["state"] == "dead" or r["circuit"] != "closed" for r in body["replicas"])
    finally:
        gateway.stop()
