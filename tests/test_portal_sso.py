"""What single sign-on takes from a provider's claims (``llm_gateway.portal.sso``); the
whole flow against a real provider is test_portal_sso_e2e.py."""

import pytest
from django.contrib.auth.models import Group
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from llm_gateway.portal.sso import GroupsFromClaims, group_names, username_of


def test_group_names_from_a_list_a_string_or_keycloak_paths():
    assert group_names({"groups": ["search", "/ml-research", " ", "search"]}) == [
        "ml-research",
        "search",
    ]
    assert group_names({"groups": "search"}) == ["search"]
    assert group_names({}) == []
    assert group_names({"roles": ["a"]}, claim="roles") == ["a"]


def test_the_username_is_the_preferred_one_else_the_mails_local_part():
    assert username_of("c@example.com", {"preferred_username": "carol", "sub": "1"}) == "carol"
    assert username_of("c.ng@example.com", {"sub": "1"}) == "c.ng"
    assert username_of(None, {"sub": "42"}) == "42"


def test_groups_come_from_userinfo_else_the_id_token(monkeypatch, settings):
    """Entra ID and Okta put a group claim in the ID token only: it is not lost."""
    settings.OIDC_OP_TOKEN_ENDPOINT = settings.OIDC_OP_USER_ENDPOINT = "http://idp/x"
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = "id", "secret"
    answers = {"sub": "1", "email": "c@example.com"}
    monkeypatch.setattr(OIDCAuthenticationBackend, "get_userinfo", lambda *a: dict(answers))
    backend = GroupsFromClaims()
    token = {"sub": "1", "groups": ["search"], "email": "old@example.com"}
    assert backend.get_userinfo("at", "it", token) == {
        "sub": "1",
        "email": "c@example.com",  # userinfo wins where both say
        "groups": ["search"],
    }
    answers["groups"] = []
    assert backend.get_userinfo("at", "it", token)["groups"] == []


@pytest.mark.django_db
def test_no_group_claim_leaves_groups_alone(settings, django_user_model):
    settings.OIDC_GROUPS_CLAIM = ""  # Google: teams kept in the admin
    user = django_user_model.objects.create(username="g")
    user.groups.add(Group.objects.create(name="kept"))
    GroupsFromClaims.sync_groups(user, {"groups": ["other"]})
    assert list(user.groups.values_list("name", flat=True)) == ["kept"]
    settings.OIDC_GROUPS_CLAIM = "groups"
    GroupsFromClaims.sync_groups(user, {"groups": ["other"]})
    assert list(user.groups.values_list("name", flat=True)) == ["other"]
