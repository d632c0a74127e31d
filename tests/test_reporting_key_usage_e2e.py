"""A key's own usage API (``/v1/gateway/key``, ``/v1/gateway/requests/{id}``) on both faces,
with the openai SDK's raw ``client.get``: answered by the gateway for the calling key only,
never relayed to the engine."""

from __future__ import annotations

import os
from decimal import Decimal

import httpx
import openai
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from llm_gateway.models import ApiKey, ModelPrice, TeamLimits, UserLimits

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(params=["fast", "django"])
def logged_gateway(request, gateway_env, server_logs):
    env = {**gateway_env, "LLM_GATEWAY_REQUEST_LOG": "true"}
    server = servers.daphne(server_logs, env, face=request.param).start()
    yield server
    server.stop()


def test_a_key_sees_its_levels_spend_and_its_own_requests(logged_gateway, fake_requests):
    ModelPrice.objects.create(pattern="fake-model", input=100, output=1000)  # 0.0057 each
    owner = get_user_model().objects.create_user(f"ann-{os.urandom(2).hex()}")
    UserLimits.objects.create(user=owner, token_budget=1000)
    team = Group.objects.create(name=f"ml-research-{os.urandom(2).hex()}")
    TeamLimits.objects.create(group=team, cost_budget=Decimal("500"), budget_period="month")
    key, raw = ApiKey.create(f"usage-{os.urandom(3).hex()}", owner=owner, team=team, rpm=60)
    _, other = ApiKey.create(f"other-{os.urandom(3).hex()}")
    client = openai.OpenAI(base_url=logged_gateway.api, api_key=raw, max_retries=0)
    for i in range(2):
        client.chat.completions.create(
            **CHAT, max_tokens=10, extra_headers={"X-Request-Id": f"mine-{i}"}
        )
    engine_calls = len(fake_requests())

    def looked_up():
        try:
            return client.get("/gateway/requests/mine-1", cast_to=httpx.Response).json()
        except openai.NotFoundError as error:  # not written yet: the documented 404
            assert error.body["code"] == "request_not_found"
            return None

    found = wait_until(looked_up, timeout=10)
    assert found == {
        "request_id": "mine-1",
        "model": "fake-model",
        "status": 200,
        "usage": {
            "prompt_tokens": 7,
            "completion_tokens": 5,
            "total_tokens": 12,
            "cached_tokens": None,
        },
        "cost": "0.005700",
        "currency": "USD",
        "ttft_ms": found["ttft_ms"],
        "duration_ms": found["duration_ms"],
        "created": found["created"],
    }

    def both_rolled_up():
        answer = client.get("/gateway/key", cast_to=httpx.Response).json()
        return answer if answer["levels"][0]["tokens"] == 24 else None

    mine = wait_until(both_rolled_up)
    assert mine["name"] == key.name and mine["prefix"].startswith(f"sk-{key.prefix}")
    assert (mine["team"], mine["currency"]) == (team.name, "USD")
    levels = {level["level"]: level for level in mine["levels"]}
    assert list(levels) == ["key", "owner", "team"]
    assert levels["key"]["limits"] == {"rpm": 60, "budget_period": "day"}
    assert levels["key"]["cost"] == "0.011400" and levels["key"]["cost_budget_remaining"] is None
    assert levels["owner"]["token_budget_remaining"] == 1000 - 24
    assert levels["team"]["period"] == "month"
    assert levels["team"]["cost_budget_remaining"] == "499.988600"
    assert levels["team"]["limits"]["cost_budget"] == "500.000000"

    # Another key sees none of it; an unknown path under /gateway/ is a 404; none was relayed.
    stranger = openai.OpenAI(base_url=logged_gateway.api, api_key=other, max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        stranger.get("/gateway/requests/mine-1", cast_to=httpx.Response)
    assert caught.value.body["code"] == "request_not_found"
    assert stranger.get("/gateway/key", cast_to=httpx.Response).json()["levels"][0]["tokens"] == 0
    with pytest.raises(openai.NotFoundError) as caught:
        client.get("/gateway/nothing-here", cast_to=httpx.Response)
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    assert caught.value.body["code"] == "not_found"
    keyless = httpx.get(logged_gateway.api + "/gateway/key")
    assert keyless.status_code == 401 and keyless.json()["error"]["code"] == "missing_api_key"
    assert len(fake_requests()) == engine_calls


def test_a_key_revokes_itself_and_the_audit_trail_names_it(face_gateway, fake_requests):
    """``DELETE /v1/gateway/key``: whoever holds a leaked key ends it at once; the record
    names the key (never its secret), the caller's address and the request id."""

    key, raw = ApiKey.create(f"leaked-{os.urandom(3).hex()}")
    with openai.OpenAI(base_url=face_gateway.api, api_key=raw, max_retries=0) as client:
        revoke_and_wait(client, key, raw, fake_requests)


def revoke_and_wait(client: openai.OpenAI, key: ApiKey, raw: str, fake_requests) -> None:
    from auditlog.models import LogEntry

    with pytest.raises(openai.APIStatusError) as caught:
        client.post("/gateway/key", cast_to=httpx.Response)
    assert caught.value.status_code == 405 and "DELETE to revoke" in caught.value.body["message"]
    answer = client.delete(
        "/gateway/key",
        cast_to=httpx.Response,
        options={"headers": {"X-Request-Id": f"revoke-{key.prefix}"}},
    ).json()
    assert answer["name"] == key.name and answer["revoked"] is True
    assert answer["prefix"] == f"sk-{key.prefix}-…"
    key.refresh_from_db()
    assert key.status == "revoked" and answer["revoked_at"] == int(key.revoked_at.timestamp())
    (record,) = LogEntry.objects.filter(object_pk=str(key.pk), action=LogEntry.Action.UPDATE)
    assert record.additional_data == {"actor": f"key {key.name} (sk-{key.prefix}-…)", "via": "api"}
    assert record.actor is None and record.remote_addr == "127.0.0.1"
    assert record.cid == f"revoke-{key.prefix}"
    assert set(record.changes_dict) == {"revoked_at"}
    assert raw not in str(record.changes) and key.digest not in str(record.changes)

    def refused():
        try:
            client.models.list()
        except openai.AuthenticationError as error:
            return error.body
        return None

    refusal = wait_until(refused, timeout=30)  # the bound only catches a hang
    assert refusal["code"] == "invalid_api_key" and "revoked" in refusal["message"]
    # Neither the DELETE nor the POST was relayed (only models.list, until the refusal).
    assert {r["path"] for r in fake_requests()} <= {"/v1/models"}
