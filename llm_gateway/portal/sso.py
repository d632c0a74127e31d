"""Single sign-on with OpenID Connect: mozilla-django-oidc's backend, with the provider's
group claim mapped onto Django groups, so a user's teams follow the company's directory.

    AUTHENTICATION_BACKENDS = ["llm_gateway.portal.sso.GroupsFromClaims", ...]
    OIDC_GROUPS_CLAIM = "groups"  # the claim that lists the user's groups (default)

At every sign-in the user's groups become exactly those the claim names (created when
missing): a group removed at the provider is a team left at the next sign-in. Keycloak's
full group paths (``/search``) are taken without their leading ``/``. The claim is read
from the userinfo answer, else from the ID token (Entra ID and Okta put groups in the ID
token only). ``OIDC_GROUPS_CLAIM = ""``: groups are not touched (Google, which has no group
claim: teams are then kept in the admin). The username is the
``preferred_username`` claim (else the e-mail's local part); users are matched by e-mail,
as the library does. docs/portal.md has the settings for Keycloak, Entra ID, Okta and Google.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend


def group_names(claims: dict[str, Any], claim: str = "groups") -> list[str]:
    """The group names a claim holds: a list, or one string; blanks dropped, ``/a`` → ``a``."""
    value = claims.get(claim) or []
    names = [value] if isinstance(value, str) else list(value)
    cleaned = (str(name).strip().lstrip("/") for name in names)
    return sorted({name[:150] for name in cleaned if name})


def username_of(email: str | None, claims: dict[str, Any] | None = None) -> str:
    """``OIDC_USERNAME_ALGO``: the provider's ``preferred_username``, else the e-mail's
    local part (the library's default is a hash of the e-mail, which nobody recognises)."""
    claims = claims or {}
    name = str(claims.get("preferred_username") or (email or "").split("@")[0] or claims["sub"])
    return name[:150]


class GroupsFromClaims(OIDCAuthenticationBackend):
    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        """The userinfo answer over the verified ID token's claims (``payload``)."""
        return {**payload, **super().get_userinfo(access_token, id_token, payload)}

    def create_user(self, claims: dict[str, Any]) -> Any:
        user = super().create_user(claims)
        self.sync_groups(user, claims)
        return user

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        self.sync_groups(user, claims)
        return user

    @staticmethod
    def sync_groups(user: Any, claims: dict[str, Any]) -> None:
        claim = getattr(settings, "OIDC_GROUPS_CLAIM", "groups")
        if not claim:
            return
        with transaction.atomic():
            groups = [
                Group.objects.get_or_create(name=name)[0] for name in group_names(claims, claim)
            ]
            user.groups.set(groups)
