from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandParser

from llm_gateway.conf import conf
from llm_gateway.management.audited import AuditedCommand
from llm_gateway.management.limit_options import count, team_named
from llm_gateway.models import PortalPolicy

FLAGS = {"max_keys": "max_keys_per_user", "max_expiry_days": "max_expiry_days"}


class Command(AuditedCommand):
    help = (
        "Set what a team's members may do in the self-service portal, within the site's "
        "ceilings (LLM_GATEWAY_PORTAL_MAX_KEYS_PER_USER and _MAX_EXPIRY_DAYS); 0 or none "
        "clears one (the site's ceiling then applies)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team", metavar="TEAM")
        unset = argparse.SUPPRESS
        parser.add_argument(
            "--max-keys", type=count, default=unset, metavar="N", help="usable keys a member"
        )
        parser.add_argument(
            "--max-expiry-days", type=count, default=unset, metavar="DAYS", help="longest life"
        )

    def handle(self, *args: Any, team: str, **options: Any) -> None:
        policy, _ = PortalPolicy.objects.get_or_create(group=team_named(team))
        changed = {field: options[flag] for flag, field in FLAGS.items() if flag in options}
        if changed:
            for field, value in changed.items():
                setattr(policy, field, value)
            policy.save(update_fields=[*changed, "updated_at"])
        keys = min(
            policy.max_keys_per_user or conf.PORTAL_MAX_KEYS_PER_USER, conf.PORTAL_MAX_KEYS_PER_USER
        )
        days = min(
            policy.max_expiry_days or conf.PORTAL_MAX_EXPIRY_DAYS, conf.PORTAL_MAX_EXPIRY_DAYS
        )
        self.stdout.write(f"team {team}: {keys} keys a member, {days} days at most")
