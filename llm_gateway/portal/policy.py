"""What one user may see and do in the portal: their teams (Django groups), the teams whose
keys they manage, and each team's rules for a new key. A user manages the keys of every
team they belong to when they hold the permission ``llm_gateway.manage_team_keys``
(granted to them or to a group of theirs, as the project's SSO maps it)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Q
from django.http import Http404

from ..conf import conf
from ..limits.spec import parse_models
from ..models import ApiKey, ApiKeyQuerySet, PortalPolicy, TeamLimits

MANAGE = "llm_gateway.manage_team_keys"


@dataclass(frozen=True)
class TeamRules:
    """A team's bounds on a key made in the portal."""

    team: Group
    max_keys: int  # usable keys of this team a member may hold
    max_expiry_days: int
    models: tuple[str, ...]  # the team's allowed models: a key's may not go beyond them


def outside(asked: tuple[str, ...], ceiling: tuple[str, ...]) -> list[str]:
    """The names or patterns in ``asked`` that ``ceiling`` (names or glob patterns; empty:
    every model) does not cover. A pattern is covered when a ceiling pattern matches it as
    text: ``llama-3-*`` is within ``llama-*``; ``*`` is within nothing narrower."""
    if not ceiling:
        return []
    return [name for name in asked if not any(fnmatch.fnmatchcase(name, c) for c in ceiling)]


class Portal:
    """The portal as one user sees it (built per request)."""

    def __init__(self, user: Any) -> None:
        self.user = user
        self.teams: list[Group] = list(user.groups.order_by("name"))
        self.managed: list[Group] = self.teams if user.has_perm(MANAGE) else []

    def team_named(self, name: str | None) -> Group:
        """One of the user's teams, else a 404 (another team's existence is not told)."""
        for team in self.teams:
            if team.name == name:
                return team
        raise Http404("No such team of yours.")

    def visible_keys(self) -> ApiKeyQuerySet:
        """The user's own keys, and the keys of the teams they manage."""
        mine = Q(owner=self.user) | Q(team__in=self.managed) if self.managed else Q(owner=self.user)
        found: ApiKeyQuerySet = ApiKey.objects.filter(mine).select_related("team", "owner")
        return found

    def key(self, pk: int) -> ApiKey:
        """A key the user may see, else a 404 (whether another's key exists is not told)."""
        key = self.visible_keys().filter(pk=pk).first()
        if key is None:
            raise Http404("No such key of yours.")
        return key

    def may_revoke(self, key: ApiKey) -> bool:
        return key.owner_id == self.user.pk or any(t.pk == key.team_id for t in self.managed)

    def rules(self, team: Group) -> TeamRules:
        policy = PortalPolicy.objects.filter(group=team).first()
        limits = TeamLimits.objects.filter(group=team).first()
        site_keys, site_days = conf.PORTAL_MAX_KEYS_PER_USER, conf.PORTAL_MAX_EXPIRY_DAYS
        keys = policy.max_keys_per_user if policy and policy.max_keys_per_user else site_keys
        days = policy.max_expiry_days if policy and policy.max_expiry_days else site_days
        return TeamRules(
            team=team,
            max_keys=min(keys, site_keys),
            max_expiry_days=min(days, site_days),
            models=parse_models(limits.allowed_models) if limits else (),
        )

    def usable_keys(self, team: Group | None = None) -> int:
        """How many usable keys the user holds (of one team, or in all)."""
        held = ApiKey.objects.filter(owner=self.user).usable()
        return (held.filter(team=team) if team is not None else held).count()
