"""/live, /ready and /health through daphne in each state: serving, engine dead, database
unreachable, draining."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from . import servers
from .test_server_drain_e2e import Streams
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def probes(http: httpx.Client) -> dict[str, tuple[int, dict]]:
    return {
        path: (r.status_code, r.json())
        for path in ("/live", "/ready", "/health")
        if (r := http.get(path))
    }


def test_serving(gateway):
    with httpx.Client(base_url=gateway.url, timeout=5) as http:
        states = probes(http)
    assert {path: status for path, (status, _) in states.items()} == {
        "/live": 200,
        "/ready": 200,
        "/health": 200,
    }
    assert states["/health"][1]["replicas"][0]["state"] in ("alive", "unknown")


def test_engine_dead(gateway_env, server_logs):
    engine = servers.fake_upstream(server_logs).start()
    env = {
        **gateway_env,
        "LLM_GATEWAY_UPSTREAM_URL": engine.url + "/v1",
        "LLM_GATEWAY_WATCHDOG_INTERVAL": "0.2",
    }
    gateway = servers.daphne(server_logs, env).start()
    try:
        engine.stop()
        with httpx.Client(base_url=gateway.url, timeout=5) as http:
            assert wait_until(lambda: http.get("/health").status_code == 503, 5)
            states = probes(http)
        assert states["/live"][0] == 200  # a dead engine must not get the gateway restarted
        assert states["/ready"] == (
            503,
            {"status": "error", "reasons": ["no engine replica is alive"]},
        )
        assert states["/health"][1]["replicas"][0]["state"] == "dead"
    finally:
        gateway.stop()
        engine.stop()


def test_database_unreachable(gateway_env, server_logs):
    env = {
        **gateway_env,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{servers.free_port()}/none",
    }
    gateway = servers.daphne(server_logs, env).start()
    try:
        with httpx.Client(base_url=gateway.url, timeout=10) as http:
            states = probes(http)
        assert states["/live"][0] == 200 and states["/health"][0] == 200
        status, body = states["/ready"]
        assert status == 503 and body["reasons"][0].startswith("the database is unreachable")
    finally:
        gateway.stop()


def test_draining(gateway_env, server_logs, api_key):
    gateway = servers.daphne(server_logs, gateway_env).start()
    http = httpx.Client(base_url=gateway.url, timeout=5)
    assert http.get("/ready").status_code == 200  # the connection the probes reuse
    streams = Streams(gateway, api_key, 1, chunks=30, delay_ms=50)
    streams.wait_started()
    gateway.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    ready = http.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["reasons"] == ["draining: the process is shutting down"]
    streams.join()
    assert gateway.process.wait(10) == 0
    http.close()
    gateway.stop()
