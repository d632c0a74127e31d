"""The admin as a person sees it: styled (its CSS served under daphne), in headless Chromium.

    LLM_GATEWAY_SCREENSHOTS=docs bash scripts/test.sh tests/test_admin_browser_e2e.py

keeps the screenshot (docs/admin-keys.png); otherwise it goes to the test's log folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from . import browser

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(browser.CHROMIUM is None, reason="Chromium is not installed"),
]


def admin_session(gateway) -> str:
    """Log in through the admin's own form; the session cookie."""
    from django.contrib.auth.models import User

    User.objects.create_superuser("admin", "admin@example.com", "a-long-test-password")
    with httpx.Client(base_url=gateway.url) as client:
        page = client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None
        r = client.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": "admin",
                "password": "a-long-test-password",
            },
            headers={"Referer": gateway.url + "/admin/login/"},
        )
        assert r.status_code == 302, r.text[:500]
        return client.cookies["sessionid"]


def test_the_key_list_is_styled_in_a_real_browser(gateway, server_logs):
    from llm_gateway.models import ApiKey

    ApiKey.create("production-app")
    ApiKey.create("batch-jobs")[0].revoke()
    assert httpx.get(gateway.url + "/static/admin/css/base.css").status_code == 200
    session = admin_session(gateway)
    folder = Path(os.environ.get("LLM_GATEWAY_SCREENSHOTS") or server_logs)
    shot = folder / "admin-keys.png"

    async def scenario(page: browser.Page) -> dict:
        await page.call("Network.setCookie", name="sessionid", value=session, url=gateway.url + "/")
        await page.goto(gateway.url + "/admin/llm_gateway/apikey/")
        await page.screenshot(shot)
        return await page.evaluate(
            """({
                title: document.title,
                sheets: [...document.styleSheets].filter(s => s.cssRules.length > 0).length,
                header: getComputedStyle(document.querySelector('#header')).backgroundColor,
                rows: [...document.querySelectorAll('#result_list tbody tr')].map(r => r.innerText),
            })"""
        )

    seen = browser.run_in_browser(scenario)
    assert seen["title"].startswith("Select API key to change")
    assert seen["sheets"] >= 3  # base, nav sidebar, changelists: loaded, with rules
    assert seen["header"] not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)")  # the blue header
    assert any("production-app" in row and "active" in row for row in seen["rows"])
    assert any("batch-jobs" in row and "revoked" in row for row in seen["rows"])
    assert shot.stat().st_size > 10_000


def test_a_keys_usage_chart_in_a_real_browser(gateway, server_logs):
    import datetime as dt

    from django.utils import timezone

    from llm_gateway.core import Principal
    from llm_gateway.core.record import RequestRecord
    from llm_gateway.models import ApiKey
    from llm_gateway.observe.request_log import row_of, write_rows

    key, _ = ApiKey.create("chat-frontend")
    rows = []
    for day in range(30):  # a month of traffic, growing, with a quiet weekend each week
        for i in range(0 if day % 7 in (5, 6) else 2 + day // 3):
            rec = RequestRecord(
                f"r{day}-{i}", "POST", "/chat/completions", Principal(key.pk, key.name, key.prefix)
            )
            rec.model, rec.status, rec.ending = ("llama-3-8b" if i % 3 else "qwen-7b"), 200, "done"
            rec.prompt_tokens, rec.completion_tokens = 120 + 10 * i, 40 + day
            rec.created = (timezone.now() - dt.timedelta(days=29 - day)).timestamp()
            rows.append(row_of(rec))
    write_rows(rows)
    session = admin_session(gateway)
    folder = Path(os.environ.get("LLM_GATEWAY_SCREENSHOTS") or server_logs)
    shot = folder / "admin-key-usage.png"

    async def scenario(page: browser.Page) -> dict:
        await page.call("Network.setCookie", name="sessionid", value=session, url=gateway.url + "/")
        await page.goto(gateway.url + f"/admin/llm_gateway/apikey/{key.pk}/change/")
        await page.evaluate("document.querySelector('#key-usage').scrollIntoView()")
        await page.screenshot(shot)
        return await page.evaluate(
            """({
                charts: document.querySelectorAll('#key-usage svg').length,
                bars: document.querySelectorAll('#key-usage svg rect').length,
                tallest: Math.max(...[...document.querySelectorAll(
                    '#key-usage svg:first-of-type rect')].map(r => r.getBBox().height)),
                models: [...document.querySelectorAll('#key-usage tbody tr')].map(r => r.innerText),
            })"""
        )

    seen = browser.run_in_browser(scenario)
    assert seen["charts"] == 2 and seen["bars"] == 60  # tokens and requests, 30 days each
    assert seen["tallest"] > 100  # drawn to scale, the busiest day near full height
    assert any(row.startswith("llama-3-8b") for row in seen["models"])
    assert any(row.startswith("qwen-7b") for row in seen["models"])
    assert shot.stat().st_size > 10_000


def test_teams_prices_and_the_cost_by_team_in_a_real_browser(gateway, server_logs):
    """The usage page by team (a daily cost chart, teams and top keys and models by cost),
    the team limits list and the price book, as a person sees them."""
    import datetime as dt
    from decimal import Decimal

    from django.contrib.auth.models import Group
    from django.utils import timezone

    from llm_gateway.core import Principal
    from llm_gateway.core.cost import Price
    from llm_gateway.core.record import RequestRecord
    from llm_gateway.models import ApiKey, ModelPrice, TeamLimits
    from llm_gateway.observe.request_log import row_of, write_rows

    prices = {
        "llama-3-8b": Price("llama-3-*", Decimal("0.15"), Decimal("0.075"), Decimal("0.60"), 1),
        "qwen-72b": Price("qwen-72b", Decimal("0.90"), Decimal("0.45"), Decimal("0.90"), 1),
    }
    for price in prices.values():
        ModelPrice.objects.create(pattern=price.pattern, input=price.input, output=price.output)
    rows = []
    for name, budget in (("ml-research", "500"), ("search", "200"), ("support-bots", "50")):
        team = Group.objects.create(name=name)
        TeamLimits.objects.create(group=team, cost_budget=Decimal(budget), budget_period="month")
        for k in range(2):
            key, _ = ApiKey.create(f"{name}-{k}", team=team)
            principal = Principal(key.pk, key.name, key.prefix, team=name)
            for day in range(30):
                for i in range(1 + (day + k) % 4 + len(name) % 3):
                    model = "qwen-72b" if (i + k) % 3 == 0 else "llama-3-8b"
                    rec = RequestRecord(
                        f"{name}{k}-{day}-{i}", "POST", "/chat/completions", principal
                    )
                    rec.model, rec.status, rec.ending = model, 200, "done"
                    rec.prompt_tokens, rec.completion_tokens = 40_000 + 900 * day, 2_000 + 50 * i
                    rec.price = prices[model]
                    tokens = rec.prompt_tokens, 0, rec.completion_tokens
                    rec.cost_micro = rec.price.micro_cost(*tokens)
                    rec.created = (timezone.now() - dt.timedelta(days=29 - day)).timestamp()
                    rows.append(row_of(rec))
    write_rows(rows)
    session = admin_session(gateway)
    folder = Path(os.environ.get("LLM_GATEWAY_SCREENSHOTS") or server_logs)

    async def scenario(page: browser.Page) -> dict:
        await page.call("Network.setCookie", name="sessionid", value=session, url=gateway.url + "/")
        await page.goto(gateway.url + "/admin/llm_gateway/requestlog/usage/")
        await page.screenshot(folder / "admin-usage-by-team.png")
        seen = await page.evaluate(
            """({
                bars: document.querySelectorAll('#cost-per-day svg rect').length,
                teams: [...document.querySelectorAll('#teams tbody tr')].map(r => r.innerText),
            })"""
        )
        await page.goto(gateway.url + "/admin/llm_gateway/teamlimits/")
        await page.screenshot(folder / "admin-teams.png")
        seen["limits"] = await page.evaluate(
            "[...document.querySelectorAll('#result_list tbody tr')].map(r => r.innerText)"
        )
        await page.goto(gateway.url + "/admin/llm_gateway/modelprice/")
        await page.screenshot(folder / "admin-prices.png")
        seen["prices"] = await page.evaluate(
            "[...document.querySelectorAll('#result_list tbody tr')].map(r => r.innerText)"
        )
        return seen

    seen = browser.run_in_browser(scenario)
    assert seen["bars"] == 30
    costs = [float(row.split("\t")[1]) for row in seen["teams"]]
    assert costs == sorted(costs, reverse=True) and costs[-1] > 0  # the largest cost first
    assert {row.split("\t")[0] for row in seen["teams"]} == {
        "ml-research",
        "search",
        "support-bots",
    }
    assert any("ml-research" in row and "500 USD/month" in row for row in seen["limits"])
    assert any("llama-3-*" in row and "0.15" in row for row in seen["prices"])
    for name in ("admin-usage-by-team.png", "admin-teams.png", "admin-prices.png"):
        assert (folder / name).stat().st_size > 10_000
