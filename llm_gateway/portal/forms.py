"""The portal's one form: a new key, within its team's rules (``policy.TeamRules``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from ..conf import conf
from ..limits.spec import parse_models
from ..models import ApiKey
from .policy import Portal, outside


def full_name(username: str, name: str) -> str:
    """A portal key's name: its owner's username, then the name they gave, so that one
    user's names never collide with another's (and the admin sees whose it is)."""
    return f"{username}/{name}"


class NewKeyForm(forms.Form):
    name = forms.SlugField(
        max_length=60, help_text="Letters, digits, - and _; your username is put before it."
    )
    team = forms.ChoiceField(help_text="Whose limits and budgets the key counts against.")
    expires_in_days = forms.IntegerField(min_value=1, label="Expires in (days)")
    models = forms.CharField(
        required=False,
        max_length=1000,
        help_text="Names or glob patterns, comma-separated; empty: all the team may use.",
    )

    def __init__(self, *args: Any, portal: Portal, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.portal = portal
        team = self.fields["team"]
        assert isinstance(team, forms.ChoiceField)
        team.choices = [(t.name, t.name) for t in portal.teams]
        longest = min((portal.rules(t).max_expiry_days for t in portal.teams), default=30)
        self.fields["expires_in_days"].initial = min(30, longest)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "team" not in data:
            return data
        team = self.portal.team_named(data["team"])
        rules = self.portal.rules(team)
        data["rules"] = rules
        days = data.get("expires_in_days")
        if days is not None and days > rules.max_expiry_days:
            self.add_error(
                "expires_in_days",
                f"Team {team.name}'s keys live {rules.max_expiry_days} days at most.",
            )
        asked = parse_models(data.get("models", ""))
        if beyond := outside(asked, rules.models):
            self.add_error(
                "models",
                f"Team {team.name} may use {', '.join(rules.models)}; not {', '.join(beyond)}.",
            )
        data["allowed_models"] = ",".join(asked)
        held, site = self.portal.usable_keys(team), self.portal.usable_keys()
        if held >= rules.max_keys:
            self.add_error(
                None,
                f"You hold {held} usable keys of team {team.name}, its most ({rules.max_keys}): "
                "revoke one first.",
            )
        if site >= conf.PORTAL_MAX_KEYS_PER_USER:
            self.add_error(
                None,
                f"You hold {site} usable keys, the most a user may "
                f"({conf.PORTAL_MAX_KEYS_PER_USER}): revoke one first.",
            )
        if "name" in data:
            data["full_name"] = full_name(self.portal.user.get_username(), data["name"])
            if len(data["full_name"]) > ApiKey._meta.get_field("name").max_length:  # type: ignore[operator]
                self.add_error("name", "Too long with your username before it.")
            elif ApiKey.objects.filter(name=data["full_name"]).exists():
                self.add_error("name", "You have a key of that name already.")
        return data

    def create(self) -> tuple[ApiKey, str]:
        data = self.cleaned_data
        expires = timezone.now() + dt.timedelta(days=data["expires_in_days"])
        return ApiKey.create(
            data["full_name"],
            expires_at=expires,
            owner=self.portal.user,
            team=data["rules"].team,
            allowed_models=data["allowed_models"],
        )
