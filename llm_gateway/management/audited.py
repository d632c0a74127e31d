"""The base of every command that changes a key, a limit, a price or a portal policy: what
it changes is recorded in the audit trail as ``command NAME (os user U)``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from .. import audit


class AuditedCommand(BaseCommand):
    def execute(self, *args: Any, **options: Any) -> Any:
        name = type(self).__module__.rsplit(".", 1)[-1]
        with audit.for_command(name):
            return super().execute(*args, **options)
