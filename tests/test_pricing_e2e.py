"""Cost on every request, end to end: the openai client and httpx -> daphne -> the fake
engine, the price book in the database, each request's cost in its request-log row and in
the daily rollup, and a team's money budget refusing once spent."""

from __future__ import annotations

import io
import json
import os
from decimal import Decimal

import httpx
import openai
import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from llm_gateway.core.cost import Price
from llm_gateway.models import ApiKey, ModelPrice, RequestLog, TeamLimits, UsageDaily

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
# Prices chosen so that every kind of token counts differently.
INPUT, CACHED, OUTPUT = Decimal("150"), Decimal("75"), Decimal("600")


def expected(prompt: int, cached: int, completion: int) -> Decimal:
    """The cost worked out here, apart from the gateway's arithmetic."""
    return ((prompt - cached) * INPUT + cached * CACHED + completion * OUTPUT) / 1_000_000


@pytest.fixture
def priced(gateway_env, server_logs):
    ModelPrice.objects.create(pattern="fake-*", input=INPUT, cached_input=CACHED, output=OUTPUT)
    ModelPrice.objects.create(pattern="*", input=1, output=1)  # less specific: never used
    team = Group.objects.create(name=f"ml-research-{os.urandom(2).hex()}")
    owner = User.objects.create(username=f"ann-{os.urandom(2).hex()}")
    _, raw = ApiKey.create(f"priced-{os.urandom(3).hex()}", team=team, owner=owner)
    env = {**gateway_env, "LLM_GATEWAY_REQUEST_LOG": "true"}
    server = servers.daphne(server_logs, env).start()
    yield server, raw, team
    server.stop()


def rows_by_id(count: int) -> dict[str, RequestLog]:
    def ready():
        rows = {r.request_id: r for r in RequestLog.objects.filter(request_id__startswith="cost-")}
        return rows if len(rows) == count else None

    rows = wait_until(ready)
    assert rows, "the request log did not get every row"
    return rows


def test_each_request_costs_its_usage_at_its_models_prices(priced):
    server, raw, team = priced
    client = openai.OpenAI(base_url=server.api, api_key=raw, max_retries=0)
    headers = {"Authorization": f"Bearer {raw}"}

    plain = client.chat.completions.create(**CHAT, extra_headers={"X-Request-Id": "cost-plain"})
    cached = client.chat.completions.create(
        **CHAT, extra_headers={"X-Request-Id": "cost-cached", "X-Fake-Cached": "4"}
    )
    assert cached.usage.prompt_tokens_details.cached_tokens == 4
    streamed = list(
        client.chat.completions.create(
            **CHAT,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"X-Request-Id": "cost-stream"},
        )
    )
    counted = list(
        client.chat.completions.create(
            **CHAT,
            stream=True,
            extra_headers={"X-Request-Id": "cost-counted", "X-Fake-No-Usage": "1"},
        )
    )
    cut_headers = {**headers, "X-Request-Id": "cost-cut", "X-Fake-Chunks": "200"}
    cut_headers["X-Fake-Delay-Ms"] = "20"
    with httpx.stream(
        "POST", server.api + "/chat/completions", json={**CHAT, "stream": True}, headers=cut_headers
    ) as response:
        events = 0
        for line in response.iter_lines():
            events += line.startswith("data: ")
            if events == 3:
                break  # the client leaves mid-stream

    rows = rows_by_id(5)
    plain_row = rows["cost-plain"]
    assert (plain_row.prompt_tokens, plain_row.completion_tokens) == (7, 5)
    assert plain.usage.completion_tokens == 5 and plain_row.cost == expected(7, 0, 5)
    assert rows["cost-cached"].cost == expected(7, 4, 5)
    assert streamed[-1].usage.completion_tokens == 5
    assert rows["cost-stream"].cost == expected(7, 0, 5)
    row = rows["cost-counted"]  # no engine usage: the gateway's own count, priced the same
    assert counted and row.usage_source in ("counted", "estimated") and row.completion_tokens == 5
    assert row.cost == expected(row.prompt_tokens, 0, row.completion_tokens)
    row = rows["cost-cut"]  # charged for what was delivered
    assert row.ending == "client_disconnected" and 3 <= row.completion_tokens < 200
    assert row.cost == expected(row.prompt_tokens, 0, row.completion_tokens)
    assert {r.price_version for r in rows.values()} == {1}
    assert {r.team for r in rows.values()} == {team.name}
    owner = ApiKey.objects.get(name=plain_row.key_name).owner
    assert {r.owner for r in rows.values()} == {owner.username}

    def rolled_up():
        days = UsageDaily.objects.filter(team=team.name)
        total = sum((d.cost for d in days), Decimal(0))
        return total if sum(d.requests for d in days) == 5 else None

    total = sum(r.cost for r in rows.values())
    assert wait_until(rolled_up) == total
    out = io.StringIO()
    call_command("usage_report", "--by", "team", "--json", stdout=out)
    by_team = {row["team"]: row for row in json.loads(out.getvalue())}
    assert Decimal(by_team[team.name]["cost"]) == total
    assert by_team[team.name]["requests"] == 5 and by_team[team.name]["unpriced"] == 0
    # The key changes hands: what it spent stays its owner's of then.
    ApiKey.objects.filter(name=plain_row.key_name).update(
        owner=User.objects.create(username=f"bob-{os.urandom(2).hex()}")
    )
    out = io.StringIO()
    call_command("usage_report", "--by", "owner", "--json", stdout=out)
    by_owner = {row["owner"]: row for row in json.loads(out.getvalue())}
    assert Decimal(by_owner[owner.username]["cost"]) == total


def test_an_unpriced_model_costs_nothing_and_is_counted_as_unpriced(gateway_env, server_logs):
    _, raw = ApiKey.create(f"unpriced-{os.urandom(3).hex()}")
    ModelPrice.objects.create(pattern="other-*", input=1, output=1)
    env = {**gateway_env, "LLM_GATEWAY_REQUEST_LOG": "true"}
    server = servers.daphne(server_logs, env).start()
    try:
        client = openai.OpenAI(base_url=server.api, api_key=raw, max_retries=0)
        client.chat.completions.create(**CHAT, extra_headers={"X-Request-Id": "cost-none"})
        (row,) = rows_by_id(1).values()
        assert row.cost is None and row.price_version is None
        day = wait_until(lambda: UsageDaily.objects.filter(key_name=row.key_name).first())
        assert day.unpriced == 1 and day.cost == 0
    finally:
        server.stop()


def test_a_team_money_budget_refuses_once_spent_naming_the_team(gateway_env, server_logs):
    """Output at 1000 per million: each request reserves and costs 5 x 0.001 = 0.005; a budget
    of 0.02 admits exactly four."""
    ModelPrice.objects.create(pattern="fake-model", input=0, output=1000)
    team = Group.objects.create(name=f"ml-{os.urandom(2).hex()}")
    TeamLimits.objects.create(group=team, cost_budget=Decimal("0.02"), budget_period="month")
    _, raw = ApiKey.create(f"budgeted-{os.urandom(3).hex()}", team=team)
    server = servers.daphne(server_logs, gateway_env).start()
    try:
        client = openai.OpenAI(base_url=server.api, api_key=raw, max_retries=0)
        for _ in range(4):
            client.chat.completions.create(**CHAT, max_tokens=5)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(**CHAT, max_tokens=5)
        error = caught.value.body
        assert error["code"] == "insufficient_quota" and error["type"] == "insufficient_quota"
        assert error["message"].startswith(f"team {team.name}: monthly budget of 0.02 USD spent")
        assert caught.value.response.headers["x-should-retry"] == "false"
    finally:
        server.stop()


def test_the_price_is_the_gateways_arithmetic_too():
    price = Price("fake-*", INPUT, CACHED, OUTPUT)
    assert price.cost(7, 4, 5) == expected(7, 4, 5)
