"""Limits end to end: the openai client -> daphne -> the fake engine, with the limits in
Redis (the machine's in .ci/run's second pass, else a private redis-server) or, for the
gateways started without one, in process memory."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from decimal import Decimal

import httpx
import openai
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from llm_gateway.models import ApiKey, ModelPrice, TeamLimits, UserLimits

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
USAGE_TOKENS = 7 + 5  # what the fake engine reports for a default answer


@pytest.fixture(scope="session")
def redis_url(server_logs):
    """The machine's Redis when REDIS_URL says so, else a private one for this session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on this machine (apt-get install redis-server)")
    server = servers.redis_server(server_logs).start()
    yield f"redis://127.0.0.1:{server.port}/0"
    server.stop()


@pytest.fixture(scope="module")
def shared(gateway_env, server_logs, redis_url):
    """Two daphne processes sharing the database and Redis."""
    env = {**gateway_env, "LLM_GATEWAY_REDIS_URL": redis_url}
    first = servers.daphne(server_logs, env).start()
    second = servers.daphne(server_logs, env).start()
    yield first, second
    first.stop()
    second.stop()


def new_key(**limits) -> str:
    _, raw = ApiKey.create(f"limited-{os.urandom(4).hex()}", **limits)
    return raw


def sdk(server, key):
    return openai.OpenAI(base_url=server.api, api_key=key, max_retries=0)


def post(server, key, body=None, **headers):
    return httpx.post(
        server.api + "/chat/completions",
        json=body or CHAT,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=10,
    )


def test_a_model_not_allowed_is_not_found_and_the_list_shows_only_allowed_ones(face_gateway):
    key = new_key(allowed_models="other-*, llama-3")
    client = sdk(face_gateway, key)
    for model in ("fake-model", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(**{**CHAT, "model": model})
        assert caught.value.status_code == 404
        assert caught.value.code == "model_not_found"
        assert caught.value.body == {
            "message": f"The model `{model}` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    listed = client.models.list(extra_headers={"X-Fake-Models": "fake-model,other-a,llama-3,x"})
    assert [model.id for model in listed.data] == ["other-a", "llama-3"]
    free = sdk(face_gateway, new_key())
    listed = free.models.list(extra_headers={"X-Fake-Models": "fake-model,other-a"})
    assert [model.id for model in listed.data] == ["fake-model", "other-a"]


def test_requests_per_minute_with_openais_headers(face_gateway):
    key = new_key(rpm=3)
    client = sdk(face_gateway, key)
    for left in (2, 1, 0):
        raw = client.chat.completions.with_raw_response.create(**CHAT)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-remaining-requests"] == str(left)
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert "x-ratelimit-limit-tokens" not in raw.headers  # no token limit on this key
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**CHAT)
    error = caught.value
    assert error.code == "rate_limit_exceeded" and error.type == "requests"
    assert "requests per min (RPM): Limit 3, Used 3, Requested 1" in error.message
    assert "Please try again in" in error.message
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_tokens_are_reserved_then_settled_to_the_usage(gateway):
    key = new_key(tpm=100)
    body = {**CHAT, "max_tokens": 40}  # reserves 1 (prompt, estimated) + 40
    first = post(gateway, key, body)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    assert first.headers["x-ratelimit-remaining-tokens"] == "59"
    # Settled to the engine's usage (12): the next requests see 12 used, then 24.
    time.sleep(0.2)
    second = post(gateway, key, body)
    assert second.headers["x-ratelimit-remaining-tokens"] == str(100 - USAGE_TOKENS - 41)
    time.sleep(0.2)
    third = post(gateway, key, body)
    assert third.headers["x-ratelimit-remaining-tokens"] == str(100 - 2 * USAGE_TOKENS - 41)
    time.sleep(0.2)
    refused = post(gateway, key, {**CHAT, "max_tokens": 70})  # 36 used + 71 > 100
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["type"] == "tokens" and error["code"] == "rate_limit_exceeded"
    assert "tokens per min (TPM): Limit 100, Used 36, Requested 71" in error["message"]
    too_large = post(gateway, key, {**CHAT, "max_tokens": 500})
    assert too_large.status_code == 429
    assert "Request too large" in too_large.json()["error"]["message"]
    assert too_large.headers["x-should-retry"] == "false"


def test_a_stream_holds_its_slot_and_a_disconnect_frees_it_at_once(gateway):
    key = new_key(max_parallel=2)
    slow = {**CHAT, "stream": True}
    headers = {"Authorization": f"Bearer {key}", "X-Fake-Delay-Ms": "200", "X-Fake-Chunks": "50"}
    with httpx.Client(base_url=gateway.api, headers=headers, timeout=10) as client:
        first = client.send(
            client.build_request("POST", "/chat/completions", json=slow), stream=True
        )
        second = client.send(
            client.build_request("POST", "/chat/completions", json=slow), stream=True
        )
        assert first.status_code == second.status_code == 200
        refused = client.post("/chat/completions", json=CHAT)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert "Too many requests in flight" in refused.json()["error"]["message"]
        first.close()  # the client leaves mid-stream: its slot is freed, not left to expire
        freed = wait_until(
            lambda: client.post("/chat/completions", json=CHAT).status_code == 200, 30
        )
        assert freed, "the slot of a stream whose client left was not freed"
        second.close()


def test_a_spent_budget_is_insufficient_quota(gateway):
    key = new_key(token_budget=60, budget_period="month")
    body = {**CHAT, "max_tokens": 20}  # reserves 21, uses 12
    client = sdk(gateway, key)
    statuses = []
    for _ in range(6):
        try:
            client.chat.completions.create(**body)
            statuses.append(200)
        except openai.RateLimitError as error:
            statuses.append(429)
            assert error.code == "insufficient_quota" and error.type == "insufficient_quota"
            assert "exceeded your current quota" in error.message
            assert "of its 60 tokens for the month" in error.message
            assert error.response.headers["x-should-retry"] == "false"
        time.sleep(0.1)  # settled between requests
    # 12, 24, 36 used; 36 + 21 = 57 fits, then 48 + 21 > 60.
    assert statuses == [200, 200, 200, 200, 429, 429]


def test_an_owner_s_limits_are_shared_by_all_their_keys(gateway):
    owner = get_user_model().objects.create_user(f"team-{os.urandom(3).hex()}")
    UserLimits.objects.create(user=owner, rpm=2)
    _, one = ApiKey.create(f"one-{os.urandom(3).hex()}", owner=owner)
    _, two = ApiKey.create(f"two-{os.urandom(3).hex()}", owner=owner)
    assert post(gateway, one).status_code == 200
    assert post(gateway, two).status_code == 200
    refused = post(gateway, one)
    assert refused.status_code == 429
    assert f"user '{owner.username}'" in refused.json()["error"]["message"]


def test_a_limit_set_from_the_command_line_applies_without_a_restart(gateway):
    key = new_key()
    assert "x-ratelimit-limit-requests" not in post(gateway, key).headers
    name = ApiKey.objects.get(prefix=key.split("-")[1]).name
    call_command("set_api_key_limits", name, rpm="5")
    seen = wait_until(lambda: post(gateway, key).headers.get("x-ratelimit-limit-requests"), 30)
    assert seen == "5"
    call_command("set_api_key_limits", name, rpm="none")
    assert wait_until(lambda: "x-ratelimit-limit-requests" not in post(gateway, key).headers, 30)


def count(results, status):
    return sum(1 for r in results if r.status_code == status)


async def burst(servers_, key, n, body=None, **headers):
    """n requests at once, alternating between the gateways (and, for a list of keys,
    between the keys every two requests)."""
    keys = [key] if isinstance(key, str) else key
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        calls = [
            client.post(
                servers_[i % len(servers_)].api + "/chat/completions",
                json=body or CHAT,
                headers={"Authorization": f"Bearer {keys[(i // 2) % len(keys)]}", **headers},
            )
            for i in range(n)
        ]
        return await asyncio.gather(*calls)


def test_exactly_the_limit_across_two_processes(shared):
    key = new_key(rpm=40)
    for server in shared:  # both know the key (and have their Redis connection) first
        wait_until(lambda server=server: post(server, new_key()).status_code == 200)
    results = asyncio.run(burst(shared, key, 120))
    assert count(results, 200) == 40 and count(results, 429) == 80
    for refused in (r for r in results if r.status_code == 429):
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert refused.headers["x-ratelimit-limit-requests"] == "40"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert int(refused.headers["retry-after"]) >= 1


def test_exactly_the_in_flight_limit_across_two_processes(shared):
    key = new_key(max_parallel=5)
    body = {**CHAT, "stream": True}
    results = asyncio.run(burst(shared, key, 60, body, **{"X-Fake-Delay-Ms": "400"}))
    assert count(results, 200) == 5 and count(results, 429) == 55
    # All ended: every slot is free again, on both processes.
    assert all(r.status_code == 200 for r in asyncio.run(burst(shared, key, 5, body)))


def test_exactly_the_token_budget_across_two_processes(shared):
    key = new_key(token_budget=1000)
    body = {**CHAT, "max_tokens": 99}  # reserves 100 each; answers after a second
    results = asyncio.run(burst(shared, key, 40, body, **{"X-Fake-Sleep-Ms": "1000"}))
    assert count(results, 200) == 10 and count(results, 429) == 30
    assert all(
        r.json()["error"]["code"] == "insufficient_quota" for r in results if r.status_code == 429
    )
    # Settled to the usage: 10 x 12 used, so 8 more requests of 100 fit, not 9.
    time.sleep(0.3)
    again = asyncio.run(burst(shared, key, 10, body, **{"X-Fake-Sleep-Ms": "1000"}))
    assert count(again, 200) == 8


def test_redis_down_fails_open_by_default_then_recovers(gateway_env, server_logs):
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on this machine (apt-get install redis-server)")
    port = servers.free_port()
    env = {**gateway_env, "LLM_GATEWAY_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    gateway = servers.daphne(server_logs, env).start()
    redis = servers.redis_server(server_logs, port)
    try:
        key = new_key(rpm=2)
        served = [post(gateway, key) for _ in range(4)]
        assert [r.status_code for r in served] == [200] * 4  # open: served, uncounted
        assert all("x-ratelimit-limit-requests" not in r.headers for r in served)
        metrics = httpx.get(gateway.url + "/metrics").text
        assert 'llm_gateway_limits_unavailable_total{outcome="served"} 4.0' in metrics
        assert gateway.output().count("limits store unreachable") == 1
        redis.start()
        recovered = wait_until(
            lambda: "x-ratelimit-limit-requests" in post(gateway, key).headers, 5
        )
        assert recovered, "the limits did not come back with Redis"
        assert "limits store reachable again" in gateway.output()
    finally:
        redis.stop()
        gateway.stop()


def test_redis_down_fails_closed_when_told(gateway_env, server_logs):
    port = servers.free_port()
    env = {
        **gateway_env,
        "LLM_GATEWAY_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "LLM_GATEWAY_LIMITS_FAIL": "closed",
    }
    gateway = servers.daphne(server_logs, env).start()
    try:
        key = new_key(rpm=2)
        refused = post(gateway, key)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "limits_unavailable"
        with pytest.raises(openai.InternalServerError) as caught:
            sdk(gateway, key).chat.completions.create(**CHAT)
        assert caught.value.status_code == 503 and caught.value.code == "limits_unavailable"
        assert post(gateway, new_key()).status_code == 200  # a key without limits needs no Redis
    finally:
        gateway.stop()


def test_a_long_stream_keeps_its_slot_and_a_dead_process_frees_it(
    gateway_env, server_logs, redis_url
):
    env = {
        **gateway_env,
        "LLM_GATEWAY_REDIS_URL": redis_url,
        "LLM_GATEWAY_LIMITS_LEASE_SECONDS": "1",
    }
    doomed = servers.daphne(server_logs, env).start()
    other = servers.daphne(server_logs, env).start()
    key = new_key(max_parallel=1)
    headers = {"Authorization": f"Bearer {key}", "X-Fake-Delay-Ms": "100", "X-Fake-Chunks": "100"}
    try:
        with httpx.Client(base_url=doomed.api, headers=headers, timeout=10) as client:
            stream = client.send(
                client.build_request("POST", "/chat/completions", json={**CHAT, "stream": True}),
                stream=True,
            )
            assert stream.status_code == 200
            time.sleep(2.5)  # over twice the lease: only renewal keeps the slot
            assert post(other, key).status_code == 429
            doomed.stop(signal.SIGKILL)  # no settle, no renewal from now on
            assert post(other, key).status_code == 429
            # Freed once the lease (1 s) runs out, without the dead process's help.
            assert wait_until(lambda: post(other, key).status_code == 200, 30)
    finally:
        doomed.stop()
        other.stop()


def team_keys(count_: int = 2, **limits) -> tuple[Group, list[str]]:
    """A team (a Django group) with these limits, and keys of it owned by different users."""
    team = Group.objects.create(name=f"team-{os.urandom(3).hex()}")
    TeamLimits.objects.create(group=team, **limits)
    users = get_user_model().objects
    raws = []
    for i in range(count_):
        owner = users.create_user(f"member-{i}-{os.urandom(3).hex()}")
        raws.append(ApiKey.create(f"t-{os.urandom(4).hex()}", owner=owner, team=team)[1])
    return team, raws


def test_a_team_rpm_is_exact_across_two_processes_and_keys(shared):
    team, keys = team_keys(3, rpm=40)
    results = asyncio.run(burst(shared, keys, 120))
    assert count(results, 200) == 40 and count(results, 429) == 80
    for refused in (r for r in results if r.status_code == 429):
        assert f"team {team.name}" in refused.json()["error"]["message"]


def test_a_team_in_flight_limit_is_exact_across_two_processes_and_keys(shared):
    _, keys = team_keys(3, max_parallel=5)
    body = {**CHAT, "stream": True}
    results = asyncio.run(burst(shared, keys, 60, body, **{"X-Fake-Delay-Ms": "400"}))
    assert count(results, 200) == 5 and count(results, 429) == 55


def test_a_team_money_budget_holds_across_two_processes_under_200_streams(shared, redis_url):
    """Each stream may cost 0.02 (10 tokens at 2000 per million) and costs 0.01 (5 tokens):
    the team's spend, read from Redis, never passes 1.00 USD plus one reservation, every
    admitted stream is charged its cost, and every refusal names the team and its budget."""
    ModelPrice.objects.update_or_create(
        pattern="fake-model", defaults={"input": Decimal(0), "output": Decimal(2000)}
    )
    # Each process reads the price book within 5 s: a probe key whose budget no priced
    # request fits says when both do.
    _, (probe,) = team_keys(1, cost_budget=Decimal("0.000001"))
    for server in shared:
        assert wait_until(lambda s=server: post(s, probe).status_code == 429, 30)
    team, keys = team_keys(4, cost_budget=Decimal("1.00"), budget_period="month")
    body = {**CHAT, "stream": True, "max_tokens": 10}
    headers = {"X-Fake-Chunks": "5", "X-Fake-Delay-Ms": "50"}
    results = asyncio.run(burst(shared, keys, 200, body, **headers))
    admitted = count(results, 200)
    assert admitted + count(results, 429) == 200 and 50 <= admitted <= 100
    for refused in (r for r in results if r.status_code == 429):
        error = refused.json()["error"]
        assert error["code"] == "insufficient_quota"
        assert error["message"].startswith(f"team {team.name}: monthly budget of 1.00 USD")
    counter = (
        f"{shared[0].env['LLM_GATEWAY_LIMITS_NAMESPACE']}:{{t{team.pk}}}:team:{team.pk}:cost:"
        + time.strftime("%Y-%m", time.gmtime())
    )

    def spent() -> int:
        out = subprocess.run(
            ["redis-cli", "-u", redis_url, "GET", counter], capture_output=True, text=True
        )
        return int(out.stdout.strip() or 0)

    assert wait_until(lambda: spent() == admitted * 10_000), (spent(), admitted)
    assert spent() <= 1_000_000 + 20_000  # at most one reservation over, by design
