import re

import pytest
from django.urls import reverse

from llm_gateway import keys
from llm_gateway.models import ApiKey

pytestmark = pytest.mark.django_db


def test_adding_a_key_shows_it_once_and_never_again(admin_client):
    response = admin_client.post(
        reverse("admin:llm_gateway_apikey_add"),
        {"name": "from-admin", "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    match = re.search(
        rb'id="raw-api-key"[^>]*>(sk-[0-9a-f]{8}-[A-Za-z0-9_\-]{43})<', response.content
    )
    assert match, response.content[:2000]
    raw = match.group(1).decode()
    key = ApiKey.objects.get(name="from-admin")
    assert key.digest == keys.digest(raw) and key.prefix == keys.prefix_of(raw)
    for url in (
        reverse("admin:llm_gateway_apikey_change", args=[key.pk]),
        reverse("admin:llm_gateway_apikey_changelist"),
        reverse("admin:llm_gateway_apikey_changelist") + "?q=from-admin",
    ):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert raw not in page.content.decode()
        assert raw.split("-", 2)[2] not in page.content.decode()


def test_changelist_shows_status_and_searches_prefix(admin_client):
    key, _ = ApiKey.create("listed")
    revoked, _ = ApiKey.create("gone")
    revoked.revoke()
    page = admin_client.get(reverse("admin:llm_gateway_apikey_changelist")).content.decode()
    assert (
        "listed" in page and "active" in page and "revoked" in page and f"sk-{key.prefix}-" in page
    )
    page = admin_client.get(
        reverse("admin:llm_gateway_apikey_changelist") + f"?q={key.prefix}"
    ).content.decode()
    assert "listed" in page and "gone" not in page


def test_bulk_revoke_action(admin_client):
    a, _ = ApiKey.create("a")
    b, _ = ApiKey.create("b")
    response = admin_client.post(
        reverse("admin:llm_gateway_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [a.pk, b.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert {k.status for k in ApiKey.objects.all()} == {"revoked"}


def test_digest_is_read_only(admin_client):
    key, _ = ApiKey.create("ro")
    page = admin_client.get(
        reverse("admin:llm_gateway_apikey_change", args=[key.pk])
    ).content.decode()
    assert key.digest in page
    assert 'name="digest"' not in page


def test_limits_are_edited_on_the_key_page_and_on_a_user(admin_client, admin_user):
    key, _ = ApiKey.create("capped")
    url = reverse("admin:llm_gateway_apikey_change", args=[key.pk])
    page = admin_client.get(url).content.decode()
    for field in ("allowed_models", "rpm", "tpm", "max_parallel", "token_budget", "budget_period"):
        assert f'name="{field}"' in page, field
    response = admin_client.post(
        url,
        {"name": "capped", "rpm": "30", "allowed_models": "llama-*", "budget_period": "day"},
    )
    assert response.status_code == 302, response.content[:3000]
    key.refresh_from_db()
    assert (key.rpm, key.allowed_models) == (30, "llama-*")
    listing = admin_client.get(reverse("admin:llm_gateway_apikey_changelist")).content.decode()
    assert "30 rpm, models llama-*" in listing
    response = admin_client.post(
        reverse("admin:llm_gateway_userlimits_add"),
        {"user": admin_user.pk, "tpm": "5000", "budget_period": "month"},
    )
    assert response.status_code == 302
    assert admin_user.llm_gateway_limits.tpm == 5000


def test_only_staff_with_permission_see_keys_usage_and_the_request_log(client, django_user_model):
    key, _ = ApiKey.create("guarded")
    pages = [
        reverse("admin:llm_gateway_apikey_changelist"),
        reverse("admin:llm_gateway_apikey_change", args=[key.pk]),
        reverse("admin:llm_gateway_apikey_add"),
        reverse("admin:llm_gateway_requestlog_changelist"),
        reverse("admin:llm_gateway_usage_overview"),
        reverse("admin:llm_gateway_userlimits_changelist"),
    ]
    login = reverse("admin:login")
    for page in pages:  # nobody signed in
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith(login), page
    member = django_user_model.objects.create_user("member", password="pw")
    client.force_login(member)
    for page in pages:  # signed in, not staff: the admin's login again
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith(login), page
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    for page in pages:  # staff, without the app's permissions
        assert client.get(page).status_code == 403, page
    assert "guarded" not in client.get(reverse("admin:index")).content.decode()


def test_teams_prices_and_the_usage_by_team_with_its_daily_cost(admin_client, admin_user):
    import datetime as dt
    from decimal import Decimal

    from django.contrib.auth.models import Group

    from llm_gateway.models import ModelPrice, TeamLimits, UsageDaily

    team = Group.objects.create(name="ml-research")
    admin_user.groups.add(team)
    limits = TeamLimits.objects.create(group=team, cost_budget=Decimal("500"), rpm=60)
    key, _ = ApiKey.create("team-key", team=team)
    ApiKey.create("loner")
    today = dt.datetime.now(dt.UTC).date()
    for days_ago, cost in ((0, "1.25"), (3, "0.75")):
        UsageDaily.objects.create(
            key=key,
            key_name=key.name,
            model="llama-3-8b",
            day=today - dt.timedelta(days=days_ago),
            requests=2,
            prompt_tokens=10,
            completion_tokens=20,
            team=team.name,
            cost=Decimal(cost),
        )
    UsageDaily.objects.create(key_name="loner", model="other", day=today, requests=1, unpriced=1)
    ModelPrice.objects.create(pattern="llama-3-*", input=Decimal("0.15"), output=Decimal("0.6"))

    page = admin_client.get(reverse("admin:llm_gateway_teamlimits_changelist")).content.decode()
    assert "ml-research" in page and "2.00 USD" in page and "60 rpm" in page
    page = admin_client.get(
        reverse("admin:llm_gateway_teamlimits_change", args=[limits.pk])
    ).content.decode()
    assert "team-key (sk-" in page and admin_user.username in page
    listed = admin_client.get(
        reverse("admin:llm_gateway_apikey_changelist") + f"?team__id__exact={team.pk}"
    )
    assert "team-key" in listed.content.decode() and "loner" not in listed.content.decode()
    page = admin_client.get(reverse("admin:llm_gateway_modelprice_changelist")).content.decode()
    assert "llama-3-*" in page

    usage = reverse("admin:llm_gateway_usage_overview")
    page = admin_client.get(usage).content.decode()
    assert 'aria-label="Cost per day, USD"' in page and "(max 1.25)" in page
    assert re.search(r'href="\?team=ml-research">ml-research</a></td><td>2\.000000<', page)
    assert "(no team)" in page
    page = admin_client.get(usage + "?team=ml-research").content.decode()
    assert 'aria-label="Cost per day, USD, team ml-research"' in page
    top = page.split('id="top-models-by-cost"')[1].split("</table>")[0]
    assert "llama-3-8b" in top and "other" not in top
