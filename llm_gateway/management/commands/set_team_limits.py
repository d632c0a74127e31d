from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from llm_gateway.management.audited import AuditedCommand
from llm_gateway.management.limit_options import add_limit_arguments, set_limits, team_named
from llm_gateway.models import TeamLimits


class Command(AuditedCommand):
    help = (
        "Set or clear a team's limits and budgets (0 or none clears one); the team is a Django "
        "group, its limits row is created if needed. Every gateway process applies them "
        "within a second."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team", metavar="TEAM")
        add_limit_arguments(parser)

    def handle(self, *args: Any, team: str, **options: Any) -> None:
        limits, _ = TeamLimits.objects.get_or_create(group=team_named(team))
        self.stdout.write(f"team {team}: {set_limits(limits, options)}")
