"""The portal's pages through Django's test client: who sees what, what a new key may be,
and what no page shows (the browser tests, test_portal_browser_e2e.py, see them drawn)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.utils import timezone

from llm_gateway import keys
from llm_gateway.models import ApiKey, PortalPolicy, TeamLimits, UsageDaily

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-password"
RAW = re.compile(r"sk-[0-9a-f]{8}-[A-Za-z0-9_\-]{43}")


def person(name: str, *teams: Group, manager: bool = False) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    user.groups.add(*teams)
    if manager:
        user.user_permissions.add(Permission.objects.get(codename="manage_team_keys"))
    return user


def signed_in(user: User) -> Client:
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    return client


@pytest.fixture
def search() -> Group:
    return Group.objects.create(name="search")


def new_key(client: Client, **fields: str):
    data = {"name": "ci", "team": "search", "expires_in_days": "30", "models": ""} | fields
    return client.post("/gateway/keys/new", data)


def test_anonymous_people_go_to_the_projects_login_page():
    for path in ("/gateway/", "/gateway/keys/new", "/gateway/usage", "/gateway/keys/1/"):
        response = Client(HTTP_HOST="127.0.0.1").get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"


def test_a_new_key_is_shown_once_with_snippets_and_never_again(search):
    client = signed_in(person("alice", search))
    response = new_key(client, models="fake-model")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    raw = RAW.search(page).group(0)
    key = ApiKey.objects.get(name="alice/ci")
    assert key.digest == keys.digest(raw) and key.owner.username == "alice"
    assert key.team == search and key.allowed_models == "fake-model"
    assert key.expires_at is not None
    assert abs(key.expires_at - timezone.now() - dt.timedelta(days=30)) < dt.timedelta(minutes=1)
    assert f'base_url="http://127.0.0.1/v1", api_key="{raw}"' in page  # the openai SDK's
    assert "curl http://127.0.0.1/v1/chat/completions" in page and '"model": "fake-model"' in page
    for path in ("/gateway/", f"/gateway/keys/{key.pk}/", "/gateway/usage"):
        shown = client.get(path).content.decode()
        assert raw not in shown and raw.split("-", 2)[2] not in shown
        assert key.digest not in shown


def test_a_new_key_stays_within_its_teams_rules(search, settings):
    settings.LLM_GATEWAY_PORTAL_MAX_EXPIRY_DAYS = 60
    TeamLimits.objects.create(group=search, allowed_models="llama-*,fake-model")
    PortalPolicy.objects.create(group=search, max_keys_per_user=2, max_expiry_days=90)
    client = signed_in(person("alice", search))
    too_long = new_key(client, expires_in_days="61").content.decode()
    assert "keys live 60 days at most" in too_long  # the site's ceiling bounds the team's 90
    beyond = new_key(client, models="qwen-7b,llama-3-*").content.decode()
    assert "not qwen-7b" in beyond and "llama-3-*" not in beyond.split("not ")[1]
    assert "may use" in new_key(client, models="*").content.decode()  # wider than the team's
    assert not ApiKey.objects.exists()
    assert RAW.search(new_key(client, name="one", models="llama-3-*").content.decode())
    assert RAW.search(new_key(client, name="two").content.decode())
    third = new_key(client, name="three").content.decode()
    assert "its most (2)" in third and not RAW.search(third)
    assert "You have a key of that name" in new_key(client, name="one").content.decode()
    ApiKey.objects.filter(name="alice/one").get().revoke()  # a revoked key frees its place
    assert RAW.search(new_key(client, name="three").content.decode())


def test_the_site_wide_ceiling_of_keys_counts_every_usable_key(search, settings):
    settings.LLM_GATEWAY_PORTAL_MAX_KEYS_PER_USER = 1
    alice = person("alice", search)
    expired = timezone.now() - dt.timedelta(seconds=1)
    ApiKey.create("old", owner=alice, expires_at=expired)  # expired: not counted
    client = signed_in(alice)
    assert RAW.search(new_key(client, name="a").content.decode())
    assert "the most a user may (1)" in new_key(client, name="b").content.decode()


def test_a_team_must_be_one_of_mine(search):
    Group.objects.create(name="other")
    client = signed_in(person("alice", search))
    response = new_key(client, team="other")
    assert response.status_code == 200 and "other is not one of the available" in (
        response.content.decode()
    )
    no_team = signed_in(person("bob")).get("/gateway/keys/new")
    assert no_team.status_code == 403 and b"You are in no team yet" in no_team.content


def test_a_manager_sees_and_revokes_the_teams_keys_a_member_does_not(search):
    alice, bob = person("alice", search), person("bob", search)
    lead = person("lead", search, manager=True)
    outsider = person("eve", Group.objects.create(name="other"), manager=True)
    alices, _ = ApiKey.create("alice/app", owner=alice, team=search)
    bobs, _ = ApiKey.create("bob/app", owner=bob, team=search)
    lead_page = signed_in(lead).get("/gateway/").content.decode()
    assert "alice/app" in lead_page and "bob/app" in lead_page
    bob_client = signed_in(bob)
    bob_page = bob_client.get("/gateway/").content.decode()
    assert "bob/app" in bob_page and "alice/app" not in bob_page
    # Another's key: not found, whether to look at or to revoke (its existence is not told).
    assert bob_client.get(f"/gateway/keys/{alices.pk}/").status_code == 404
    assert bob_client.post(f"/gateway/keys/{alices.pk}/revoke").status_code == 404
    eve = signed_in(outsider)
    assert eve.get(f"/gateway/keys/{alices.pk}/").status_code == 404  # manages another team
    assert eve.post(f"/gateway/keys/{alices.pk}/revoke").status_code == 404
    assert ApiKey.objects.get(pk=alices.pk).status == "active"
    response = signed_in(lead).post(f"/gateway/keys/{alices.pk}/revoke")
    assert response.status_code == 302 and ApiKey.objects.get(pk=alices.pk).status == "revoked"
    assert bob_client.post(f"/gateway/keys/{bobs.pk}/revoke").status_code == 302
    assert ApiKey.objects.get(pk=bobs.pk).status == "revoked"


def test_every_form_needs_its_csrf_token(search):
    alice = person("alice", search)
    key, _ = ApiKey.create("alice/app", owner=alice, team=search)
    client = Client(HTTP_HOST="127.0.0.1", enforce_csrf_checks=True)
    client.force_login(alice)
    assert new_key(client).status_code == 403
    assert client.post(f"/gateway/keys/{key.pk}/revoke").status_code == 403
    assert not ApiKey.objects.filter(name="alice/ci").exists()
    assert ApiKey.objects.get(pk=key.pk).status == "active"
    assert client.get(f"/gateway/keys/{key.pk}/revoke").status_code == 405  # POST only


def test_usage_is_mine_or_one_of_my_teams_never_another(search):
    alice = person("alice", search)
    Group.objects.create(name="other")
    today = timezone.now().date()
    for team, owner, tokens in (("search", "alice", 1000), ("other", "carol", 7777)):
        UsageDaily.objects.create(
            key_name=f"{owner}/k",
            model=f"{team}-model",
            day=today,
            requests=3,
            prompt_tokens=tokens,
            completion_tokens=0,
            team=team,
            owner=owner,
            cost=Decimal("0.25"),
        )
    client = signed_in(alice)
    mine = client.get("/gateway/usage").content.decode()
    assert "search-model" in mine and "other-model" not in mine and "7777" not in mine
    team = client.get("/gateway/usage?team=search").content.decode()
    assert team.count("<svg") == 2 and "search-model" in team and "0.250000" in team
    assert client.get("/gateway/usage?team=other").status_code == 404
    assert client.get("/gateway/usage?team=nobody").status_code == 404


def test_the_key_list_shows_what_remains_of_each_budget(search):
    alice = person("alice", search)
    TeamLimits.objects.create(group=search, cost_budget=Decimal("5"), budget_period="month")
    key, _ = ApiKey.create("alice/app", owner=alice, team=search, token_budget=10_000)
    UsageDaily.objects.create(
        key=key,
        key_name=key.name,
        model="m",
        day=timezone.now().date(),
        requests=1,
        prompt_tokens=2_500,
        completion_tokens=500,
        team="search",
        owner="alice",
        cost=Decimal("1.25"),
    )
    page = signed_in(alice).get("/gateway/").content.decode()
    row = re.search(rf'<tr data-key="{key.pk}">(.*?)</tr>', page, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td.*?</td>", row, re.S)]
    assert cells[-5:] == ["day", "3000", "1.250000", "7000", "-"]  # tokens left; no money budget
    team = re.search(r'data-team="search">(.*?)</div>', page, re.S).group(1)
    assert "3.750000" in team  # the team's month budget of 5.00, 1.25 spent


def test_the_portal_can_be_turned_off(search, settings):
    settings.LLM_GATEWAY_PORTAL = False
    client = signed_in(person("alice", search))
    for path in ("/gateway/", "/gateway/keys/new", "/gateway/usage"):
        assert client.get(path).status_code == 404
    assert new_key(client).status_code == 404 and not ApiKey.objects.exists()


def test_the_portal_lives_wherever_the_project_includes_it(search, settings):
    settings.ROOT_URLCONF = "tests.urls_portal_only"
    client = signed_in(person("alice", search))
    page = client.get("/people/llm/")
    assert page.status_code == 200 and 'href="/people/llm/keys/new"' in page.content.decode()
    assert "Log out" not in page.content.decode()  # no logout URL in that project
    response = client.post(
        "/people/llm/keys/new", {"name": "ci", "team": "search", "expires_in_days": "3"}
    )
    assert RAW.search(response.content.decode())
    assert 'href="/people/llm/keys/' in response.content.decode()
