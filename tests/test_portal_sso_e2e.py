"""Single sign-on, end to end: a real OpenID Connect provider (django-oauth-toolkit, its
own process, users and database: tests/oidc_provider) and the example project signing in
with mozilla-django-oidc (``llm_gateway.portal.sso``), in Chromium. A person signs in at
the provider, lands in the portal in the team the provider's group claim named, makes a
key that relays a chat completion; the group removed at the provider, the next sign-in
takes the team away."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import User

from llm_gateway.models import ApiKey

from . import browser, servers

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(browser.CHROMIUM is None, reason="Chromium is not installed"),
]
PASSWORD = "carols-directory-password"
SECRET = "the-gateways-client-secret"
RAW = re.compile(r"sk-[0-9a-f]{8}-[A-Za-z0-9_\-]{43}")


class Provider:
    """The identity provider: its database filled by tests/oidc_provider/fill.py, served by
    daphne at http://localhost:PORT (another host than the gateway's 127.0.0.1, as a real
    provider is: each keeps its own cookies)."""

    def __init__(self, folder: Path) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.env = {
            "IDP_DB": str(folder / "idp.sqlite3"),
            "IDP_RSA_KEY": pem,
            "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        }
        port = servers.free_port()
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        argv.append("tests.oidc_provider.asgi:application")
        self.server = servers.Server(argv, port, self.env, folder / f"idp-{port}.log")
        self.url = f"http://localhost:{port}"

    def fill(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "tests.oidc_provider.fill", *args],
            cwd=servers.ROOT,
            env={**self.server.env},
            check=True,
        )


@pytest.fixture
def provider(tmp_path: Path):
    idp = Provider(tmp_path)
    idp.fill("user", "carol", PASSWORD, "carol@example.com", "search")
    idp.server.start()
    yield idp
    idp.server.stop()


@pytest.fixture
def sso_gateway(provider: Provider, gateway_env, server_logs):
    port = servers.free_port()
    provider.fill("client", "llm-gateway", SECRET, f"http://127.0.0.1:{port}/oidc/callback/")
    env = {
        **gateway_env,
        "OIDC_RP_CLIENT_ID": "llm-gateway",
        "OIDC_RP_CLIENT_SECRET": SECRET,
        "OIDC_OP_AUTHORIZATION_ENDPOINT": provider.url + "/o/authorize/",
        "OIDC_OP_TOKEN_ENDPOINT": provider.url + "/o/token/",
        "OIDC_OP_USER_ENDPOINT": provider.url + "/o/userinfo/",
        "OIDC_OP_JWKS_ENDPOINT": provider.url + "/o/.well-known/jwks.json",
    }
    server = servers.daphne(server_logs, env, port).start()
    yield server
    server.stop()


async def text(page: browser.Page, selector: str = "main") -> str:
    return str(await page.evaluate(f"document.querySelector({selector!r}).innerText"))


async def single_sign_on(
    page: browser.Page, gateway: str, provider: Provider, shots: Path | None = None
) -> str:
    """From the portal to the provider's login and back; where the browser ends."""
    await page.goto(gateway + "/gateway/")
    assert "/accounts/login/" in await page.evaluate("location.href")
    if shots is not None:
        await page.screenshot(shots / "portal-login.png")
    await browser.click(page, "#sso")
    if (await page.evaluate("location.origin")) == provider.url:  # not signed in there yet
        assert await page.evaluate("document.title") == "Example Corp sign-in"
        if shots is not None:
            await page.screenshot(shots / "portal-sso-provider.png")
        await browser.submit(page, "#idp-login", {"username": "carol", "password": PASSWORD})
    return str(await page.evaluate("location.origin + location.pathname"))


def test_sign_in_at_the_provider_lands_in_the_team_its_claim_names(
    sso_gateway, provider, server_logs
):
    gateway = sso_gateway.url
    shots = Path(os.environ.get("LLM_GATEWAY_SCREENSHOTS") or server_logs)

    async def first_visit(page: browser.Page) -> dict:
        landed = await single_sign_on(page, gateway, provider, shots)
        seen = {"landed": landed, "who": await text(page, "#username"), "keys": await text(page)}
        await page.goto(gateway + "/gateway/keys/new")
        await browser.submit(
            page, "#new-key", {"name": "sso-app", "team": "search", "expires_in_days": "7"}
        )
        seen["raw"] = await text(page, "#raw-key")
        # Then the provider's admin takes carol out of the group; she signs out and in.
        provider.fill("user", "carol", PASSWORD, "carol@example.com")
        await browser.click(page, "header form button")
        seen["signed_out_at"] = await page.evaluate("location.pathname")
        seen["again"] = await single_sign_on(page, gateway, provider)  # the provider knows her
        seen["keys_after"] = await text(page)
        await page.goto(gateway + "/gateway/keys/new")
        seen["new_after"] = await text(page)
        return seen

    seen = browser.run_in_browser(first_visit)
    assert seen["landed"] == gateway + "/gateway/", seen
    assert seen["who"] == "carol"  # the provider's preferred_username
    assert "Your teams" in seen["keys"] and "search" in seen["keys"]
    carol = User.objects.get(username="carol")
    assert carol.email == "carol@example.com" and not carol.has_usable_password()

    # The key made after single sign-on relays a chat completion.
    raw = seen["raw"].strip()
    assert RAW.fullmatch(raw)
    key = ApiKey.objects.get(name="carol/sso-app")
    assert key.owner == carol and key.team is not None and key.team.name == "search"
    with openai.OpenAI(base_url=sso_gateway.api, api_key=raw, max_retries=0) as client:
        answer = client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content

    # The group removed at the provider: the next sign-in removed the team.
    assert seen["signed_out_at"] == "/accounts/login/"
    assert seen["again"] == gateway + "/gateway/"
    assert list(carol.groups.values_list("name", flat=True)) == []
    assert "Your teams" not in seen["keys_after"]
    assert "You are in no team yet" in seen["new_after"]
