from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from llm_gateway import keys
from llm_gateway.management.audited import AuditedCommand
from llm_gateway.management.limit_options import (
    add_limit_arguments,
    limit_values,
    team_named,
    user_named,
)
from llm_gateway.models import ApiKey


class Command(AuditedCommand):
    help = "Create an API key; the raw key is the last line of the output, shown this once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--expires-in-days", type=float, default=None)
        parser.add_argument(
            "--replace", action="store_true", help="delete an existing key of that name first"
        )
        parser.add_argument(
            "--team", default=None, help="the team (a group) whose limits it counts against"
        )
        parser.add_argument("--owner", default=None, metavar="USERNAME", help="the key's owner")
        add_limit_arguments(parser)

    def handle(
        self,
        *args: Any,
        name: str,
        expires_in_days: float | None,
        replace: bool,
        team: str | None,
        owner: str | None,
        **options: Any,
    ) -> None:
        try:
            limits = limit_values(options)
        except argparse.ArgumentTypeError as exc:
            raise CommandError(str(exc)) from None
        if replace:
            ApiKey.objects.filter(name=name).delete()
        if ApiKey.objects.filter(name=name).exists():
            raise CommandError(f"An API key named {name!r} already exists.")
        expires_at = None
        if expires_in_days is not None:
            if expires_in_days <= 0:
                raise CommandError("--expires-in-days must be above 0.")
            expires_at = timezone.now() + dt.timedelta(days=expires_in_days)
        group = team_named(team) if team is not None else None
        user = user_named(owner) if owner is not None else None
        key, raw = ApiKey.create(name, expires_at=expires_at, owner=user, team=group, **limits)
        until = f", expires {key.expires_at.isoformat()}" if key.expires_at else ""
        limited = f", limits: {key.limits_summary()}" if limits else ""
        held = "".join(
            [f", team {group.name}" if group else "", f", owner {owner}" if user else ""]
        )
        self.stderr.write(
            f"Created API key {key.name!r} ({keys.display(key.prefix)}){held}{until}{limited}."
        )
        self.stderr.write("Store it now: it is shown only this once.")
        self.stdout.write(raw)
