from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from llm_gateway import keys
from llm_gateway.management.audited import AuditedCommand
from llm_gateway.management.limit_options import add_limit_arguments, set_limits
from llm_gateway.models import ApiKey


class Command(AuditedCommand):
    help = (
        "Set or clear an API key's limits (0 or none clears one); every gateway process "
        "applies them within a second."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", metavar="NAME_OR_PREFIX")
        add_limit_arguments(parser)

    def handle(self, *args: Any, key: str, **options: Any) -> None:
        matches = list(ApiKey.objects.named(key))
        if not matches:
            raise CommandError(f"No API key with name or prefix {key!r}.")
        if len(matches) > 1:
            raise CommandError(f"{key!r} matches several keys; use the name.")
        api_key = matches[0]
        summary = set_limits(api_key, options)
        self.stdout.write(f"{api_key.name} ({keys.display(api_key.prefix)}): {summary}")
