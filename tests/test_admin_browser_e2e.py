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
