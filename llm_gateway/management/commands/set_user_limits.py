from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from llm_gateway.management.audited import AuditedCommand
from llm_gateway.management.limit_options import add_limit_arguments, set_limits, user_named
from llm_gateway.models import UserLimits


class Command(AuditedCommand):
    help = (
        "Set or clear a user's limits and budgets, shared by all the user's keys (0 or none "
        "clears one); the limits row is created if needed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", metavar="USERNAME")
        add_limit_arguments(parser)

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        limits, _ = UserLimits.objects.get_or_create(user=user_named(username))
        self.stdout.write(f"user {username}: {set_limits(limits, options)}")
