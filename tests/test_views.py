import pytest
from django.test import override_settings

from llm_gateway.runtime import get_runtime


@override_settings(LLM_GATEWAY_UPSTREAM_URL="")
def test_health_without_an_engine_is_ok(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


@pytest.mark.parametrize(("state", "status"), [("alive", 200), ("unknown", 200), ("dead", 503)])
@override_settings(LLM_GATEWAY_UPSTREAM_URL="http://127.0.0.1:9/v1")
def test_health_reports_the_engine_state(client, monkeypatch, state, status):
    (upstream,) = get_runtime().pool.upstreams
    monkeypatch.setattr(upstream.health, "ensure_started", lambda: None)
    monkeypatch.setattr(upstream.load, "ensure_started", lambda: None)  # no /metrics reads
    if (counters := get_runtime().fair_counters) is not None:  # no Redis loop per request
        monkeypatch.setattr(counters, "ensure_started", lambda: None)
    upstream.health.status.state = state
    upstream.health.status.reason = "gone" if state == "dead" else ""
    response = client.get("/health")
    assert response.status_code == status
    assert response.json()["engine"]["state"] == state
    assert response.json()["status"] == ("error" if state == "dead" else "ok")
