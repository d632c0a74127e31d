"""The portal as a person uses it, in headless Chromium against a real daphne: sign in,
list, create (the key shown once, then usable with the openai SDK), revoke (then refused by
the relay), a team manager's view against a plain member's, another's key giving 404, and
the usage chart, on a desktop and on a phone.

    LLM_GATEWAY_SCREENSHOTS=docs bash scripts/test.sh tests/test_portal_browser_e2e.py

keeps the screenshots in docs/ (otherwise they go to the test's log folder).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import openai
import pytest
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone

from llm_gateway.models import ApiKey, UsageDaily

from . import browser
from .waiting import wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(browser.CHROMIUM is None, reason="Chromium is not installed"),
]
PASSWORD = "a-long-test-password"
RAW = re.compile(r"sk-[0-9a-f]{8}-[A-Za-z0-9_\-]{43}")


@pytest.fixture
def team_users() -> tuple[Group, User, User]:
    """Team search: alice (a member) and lead (who manages its keys)."""
    team = Group.objects.create(name="search")
    alice = User.objects.create_user("alice", password=PASSWORD)
    lead = User.objects.create_user("lead", password=PASSWORD)
    lead.user_permissions.add(Permission.objects.get(codename="manage_team_keys"))
    for user in (alice, lead):
        user.groups.add(team)
    return team, alice, lead


def shots(server_logs: Path) -> Path:
    return Path(os.environ.get("LLM_GATEWAY_SCREENSHOTS") or server_logs)


async def text(page: browser.Page, selector: str = "main") -> str:
    return str(await page.evaluate(f"document.querySelector({selector!r}).innerText"))


async def sign_in(page: browser.Page, url: str, username: str) -> None:
    """Through the project's own login page, as a person signs in."""
    await page.goto(url + "/gateway/")  # anonymous: sent to the login page
    assert "/accounts/login/?next=/gateway/" in await page.evaluate("location.href")
    await browser.submit(page, "#login", {"username": username, "password": PASSWORD})
    where = await page.evaluate("location.pathname")
    assert where == "/gateway/", (where, await text(page, "body"))
    assert await text(page, "#username") == username


def test_sign_in_create_use_and_revoke_a_key(gateway, server_logs, team_users):
    folder = shots(server_logs)

    async def scenario(page: browser.Page) -> dict:
        await sign_in(page, gateway.url, "alice")
        await page.goto(gateway.url + "/gateway/keys/new")
        await page.screenshot(folder / "portal-new-key.png")
        await browser.submit(
            page, "#new-key", {"name": "notebook", "team": "search", "expires_in_days": "30"}
        )
        await page.screenshot(folder / "portal-key-created.png")
        seen = {
            "created": await text(page),
            "raw": await text(page, "#raw-key"),
            "sdk": await text(page, "#sdk-snippet"),
        }
        await page.goto(gateway.url + "/gateway/")
        await page.screenshot(folder / "portal-keys.png")
        seen["list"] = await text(page)
        seen["key_url"] = await page.evaluate(
            "document.querySelector('#my-keys a[href*=\"/keys/\"]').href"
        )
        await page.goto(seen["key_url"])
        seen["key_page"] = await page.evaluate("document.documentElement.outerHTML")
        return seen

    seen = browser.run_in_browser(scenario)
    raw = seen["raw"].strip()
    assert RAW.fullmatch(raw) and "shown only this once" in seen["created"]
    assert f'base_url="{gateway.url}/v1", api_key="{raw}"' in seen["sdk"]
    assert "alice/notebook" in seen["list"] and "search" in seen["list"]
    for page in (seen["list"], seen["key_page"]):  # never again
        assert raw not in page and raw.split("-", 2)[2] not in page

    # The key works with the openai SDK, as the page showed it.
    with openai.OpenAI(base_url=gateway.api, api_key=raw, max_retries=0) as client:
        answer = client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content
        revoke_and_see_it_refused(seen["key_url"], gateway, client, folder)


def revoke_and_see_it_refused(key_url: str, gateway, client: openai.OpenAI, folder: Path) -> None:

    async def revoke(page: browser.Page) -> str:
        await sign_in(page, gateway.url, "alice")
        await page.goto(key_url)
        await page.screenshot(folder / "portal-key.png")
        await browser.click(page, "#revoke button")
        return await text(page, "#key-status")

    assert browser.run_in_browser(revoke) == "revoked"

    def refused():
        try:
            client.models.list()
        except openai.AuthenticationError as error:
            return error.body
        return None

    refusal = wait_until(refused, timeout=30)  # how soon: bench/propagation.py
    assert refusal["code"] == "invalid_api_key" and "revoked" in refusal["message"]


def test_a_manager_sees_the_teams_keys_a_member_does_not(gateway, server_logs, team_users):
    team, alice, lead = team_users
    alices = ApiKey.create("alice/app", owner=alice, team=team)[0]
    leads = ApiKey.create("lead/batch", owner=lead, team=team)[0]
    folder = shots(server_logs)

    async def scenario(page: browser.Page) -> dict:
        await sign_in(page, gateway.url, "lead")
        await page.screenshot(folder / "portal-team-keys.png")
        seen = {"lead": await text(page)}
        await page.goto(gateway.url + f"/gateway/keys/{alices.pk}/")
        seen["lead_on_alices"] = await text(page, "body")
        return seen

    async def member(page: browser.Page) -> dict:
        await sign_in(page, gateway.url, "alice")
        seen = {"alice": await text(page)}
        await page.goto(gateway.url + f"/gateway/keys/{leads.pk}/")
        seen["alice_on_leads"] = await text(page, "body")
        seen["title"] = await page.evaluate("document.title")
        return seen

    seen = browser.run_in_browser(scenario) | browser.run_in_browser(member)
    assert "Keys of team search" in seen["lead"] and "alice/app" in seen["lead"]
    assert "alice/app" in seen["lead_on_alices"] and "Revoke" in seen["lead_on_alices"]
    assert "alice/app" in seen["alice"] and "lead/batch" not in seen["alice"]
    assert "Keys of team" not in seen["alice"]
    assert "Not Found" in seen["alice_on_leads"] and "lead/batch" not in seen["alice_on_leads"]


def test_the_usage_chart(gateway, server_logs, team_users):
    team, alice, _ = team_users
    key = ApiKey.create("alice/batch", owner=alice, team=team)[0]
    today = timezone.now().date()
    for back in range(30):
        tokens = 0 if back % 7 in (1, 2) else 2000 + 150 * (30 - back)
        UsageDaily.objects.create(
            key=key,
            key_name=key.name,
            model="fake-model" if back % 3 else "fake-large",
            day=today - timezone.timedelta(days=back),
            requests=tokens // 200,
            prompt_tokens=tokens,
            completion_tokens=tokens // 4,
            team="search",
            owner="alice",
            cost=f"{tokens * 0.000002:.6f}",
        )
    folder = shots(server_logs)

    async def scenario(page: browser.Page) -> dict:
        await sign_in(page, gateway.url, "alice")
        await page.goto(gateway.url + "/gateway/usage?team=search")
        await page.screenshot(folder / "portal-usage.png")
        seen = await page.evaluate(
            """({
                charts: document.querySelectorAll('#usage-charts svg').length,
                bars: [...document.querySelectorAll('#usage-charts .chart:first-child svg rect')]
                    .map(r => r.getBBox().height),
                models: [...document.querySelectorAll('.per-model tbody tr')].map(r => r.innerText),
            })"""
        )
        # On a phone: nothing wider than the screen (a wide table scrolls in its own box).
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            width=390,
            height=844,
            deviceScaleFactor=2,
            mobile=True,
        )
        widths = {}
        for path in (
            "/gateway/usage?team=search",
            "/gateway/",
            "/gateway/keys/new",
            f"/gateway/keys/{key.pk}/",
        ):
            await page.goto(gateway.url + path)
            widths[path] = await page.evaluate("document.documentElement.scrollWidth")
        await page.screenshot(folder / "portal-key-phone.png")
        return {**seen, "widths": widths}

    seen = browser.run_in_browser(scenario)
    assert seen["charts"] == 2 and len(seen["bars"]) == 30
    assert sum(1 for height in seen["bars"] if height == 0) == 9  # the quiet days, drawn empty
    assert max(seen["bars"]) > 100  # to scale: the busiest day near full height
    assert [row.split("\t")[0] for row in seen["models"]] == ["fake-model", "fake-large"]
    assert all(width <= 390 for width in seen["widths"].values()), seen["widths"]
