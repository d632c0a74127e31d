"""A portal key's models within its team's: ``policy.outside`` (pure), and a team's rules
within the site's ceilings."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from llm_gateway.models import PortalPolicy, TeamLimits
from llm_gateway.portal.policy import Portal, outside


def test_a_ceiling_of_nothing_allows_everything():
    assert outside(("*", "qwen-7b"), ()) == []


def test_names_and_narrower_patterns_are_within_wider_ones():
    ceiling = ("llama-*", "qwen-7b")
    assert outside(("llama-3-8b", "llama-3-*", "qwen-7b"), ceiling) == []
    assert outside(("qwen-72b", "*", "llama*", "Llama-3"), ceiling) == [
        "qwen-72b",
        "*",
        "llama*",  # wider than llama-*: it would also match llamafile
        "Llama-3",  # model names are case-sensitive, as the relay matches them
    ]


@pytest.mark.django_db
def test_a_teams_rules_never_exceed_the_sites(settings):
    settings.LLM_GATEWAY_PORTAL_MAX_KEYS_PER_USER = 5
    settings.LLM_GATEWAY_PORTAL_MAX_EXPIRY_DAYS = 30
    team = Group.objects.create(name="t")
    user = User.objects.create_user("u")
    user.groups.add(team)
    portal = Portal(user)
    assert (portal.rules(team).max_keys, portal.rules(team).max_expiry_days) == (5, 30)
    PortalPolicy.objects.create(group=team, max_keys_per_user=9, max_expiry_days=7)
    TeamLimits.objects.create(group=team, allowed_models="a, b*")
    rules = portal.rules(team)
    assert (rules.max_keys, rules.max_expiry_days, rules.models) == (5, 7, ("a", "b*"))
