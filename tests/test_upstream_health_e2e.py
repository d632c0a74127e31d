"""The engine watchdog: death and recovery seen by /health and the relay, with a real daphne."""

from __future__ import annotations

import time

import httpx
import pytest

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
FAST = {"LLM_GATEWAY_WATCHDOG_INTERVAL": "0.2", "LLM_GATEWAY_WATCHDOG_FAILURES": "2"}


def poll(url: str, status: int, timeout: float = 30.0) -> tuple[float, httpx.Response]:
    start = time.monotonic()
    while True:
        r = httpx.get(url, timeout=5)
        if r.status_code == status or time.monotonic() - start > timeout:
            return time.monotonic() - start, r
        time.sleep(0.05)


@pytest.fixture
def engine(server_logs):
    server = servers.fake_upstream(server_logs)
    yield server
    server.stop()


def test_engine_death_and_recovery(engine, gateway_env, server_logs, api_key):
    engine.start()
    env = {**gateway_env, **FAST, "LLM_GATEWAY_UPSTREAM_URL": engine.url + "/v1"}
    gateway = servers.daphne(server_logs, env).start()
    auth = {"Authorization": f"Bearer {api_key}"}
    try:
        _, r = poll(gateway.url + "/health", 200)
        assert r.json()["status"] == "ok"  # "unknown" until the first probe: not dead
        alive = wait_until(
            lambda: httpx.get(gateway.url + "/health").json()["engine"]["state"] == "alive"
        )
        assert alive  # the watchdog looks at the models first, then probes
        engine.stop()
        _, r = poll(gateway.url + "/health", 503)
        assert r.status_code == 503
        assert (
            r.json()["engine"]["state"] == "dead"
            and "connect" in r.json()["engine"]["reason"].lower()
        )
        r = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=auth)
        assert r.status_code == 503 and r.json()["error"]["code"] == "engine_unavailable"
        # Refused from the watchdog's verdict, not after a connect attempt of its own.
        assert r.json()["error"]["message"].startswith("The engine is unavailable:")
        engine.start()  # same port: the engine comes back, daphne is not restarted
        _, r = poll(gateway.url + "/health", 200)
        assert r.status_code == 200
        assert httpx.get(gateway.url + "/v1/models", headers=auth).status_code == 200
    finally:
        gateway.stop()


def test_engine_without_health_endpoint_is_probed_on_models(server_logs, gateway_env):
    engine = servers.fake_upstream(server_logs, health=False).start()
    gateway = servers.daphne(
        server_logs, {**gateway_env, **FAST, "LLM_GATEWAY_UPSTREAM_URL": engine.url + "/v1"}
    ).start()
    try:
        r = wait_until(
            lambda: (
                (r := httpx.get(gateway.url + "/health")).json()["engine"]["state"] == "alive" and r
            )
        )
        assert r and r.status_code == 200
    finally:
        gateway.stop()
        engine.stop()


def test_unreachable_engine_is_a_503(server_logs, gateway_env, api_key):
    port = servers.free_port()  # nothing listens here
    gateway = servers.daphne(
        server_logs, {**gateway_env, "LLM_GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{port}/v1"}
    ).start()
    try:
        import openai

        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            client.models.list()
        assert info.value.status_code == 503 and info.value.body["code"] == "engine_unavailable"
    finally:
        gateway.stop()


def test_exit_on_engine_death(engine, gateway_env, server_logs):
    engine.start()
    env = {
        **gateway_env,
        **FAST,
        "LLM_GATEWAY_UPSTREAM_URL": engine.url + "/v1",
        "LLM_GATEWAY_EXIT_ON_ENGINE_DEATH": "true",
    }
    gateway = servers.daphne(server_logs, env).start()
    try:
        poll(gateway.url + "/health", 200)
        engine.stop()
        assert gateway.process is not None
        gateway.process.wait(timeout=5)
        assert gateway.process.returncode is not None
    finally:
        gateway.stop()


def test_busy_engine_is_not_probed(engine, gateway_env, server_logs, api_key):
    """Relayed traffic shows the engine alive: no probe may cut into a running generation."""
    engine.start()
    env = {**gateway_env, **FAST, "LLM_GATEWAY_UPSTREAM_URL": engine.url + "/v1"}
    gateway = servers.daphne(server_logs, env).start()
    try:
        poll(gateway.url + "/health", 200)
        idle = wait_until(
            lambda: (
                len(httpx.get(engine.url + "/_fake/probes").json()) >= 3
                and httpx.get(engine.url + "/_fake/probes").json()
            )
        )
        assert len(idle) >= 3  # idle: probed every 0.2 s
        headers = {
            "Authorization": f"Bearer {api_key}",
            "X-Fake-Chunks": "60",
            "X-Fake-Delay-Ms": "25",
        }
        body = {**CHAT, "stream": True}
        with httpx.stream(
            "POST", gateway.url + "/v1/chat/completions", json=body, headers=headers
        ) as r:
            first = None
            for _ in r.iter_raw():
                first = first or time.time()
            last = time.time()
        probes = httpx.get(engine.url + "/_fake/probes").json()
        during = [t for t in probes if first + 0.25 < t < last]
        assert last - first > 1.2 and during == [], during
    finally:
        gateway.stop()
