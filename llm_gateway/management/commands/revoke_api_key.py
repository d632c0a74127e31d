from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from llm_gateway import keys
from llm_gateway.management.audited import AuditedCommand
from llm_gateway.models import ApiKey


class Command(AuditedCommand):
    help = (
        "Revoke an API key by name or by prefix (the 8 characters after 'sk-'); "
        "every gateway process refuses it within a second."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name_or_prefix")

    def handle(self, *args: Any, name_or_prefix: str, **options: Any) -> None:
        matches = ApiKey.objects.named(name_or_prefix)
        if not matches:
            raise CommandError(f"No API key with name or prefix {name_or_prefix!r}.")
        if len(matches) > 1:
            raise CommandError(f"{name_or_prefix!r} matches several keys; use the name.")
        key = matches[0]
        if key.revoked_at is not None:
            self.stdout.write(
                f"API key {key.name!r} was already revoked at {key.revoked_at.isoformat()}."
            )
            return
        key.revoke()
        self.stdout.write(f"Revoked API key {key.name!r} ({keys.display(key.prefix)}).")
