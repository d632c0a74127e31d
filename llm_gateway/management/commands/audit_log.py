from __future__ import annotations

import datetime as dt
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from llm_gateway import audit


def _day(value: str) -> dt.datetime:
    try:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), tzinfo=dt.UTC)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = (
        "Print the audit trail, oldest first, one line a record: time (UTC), actor (and how "
        "they came: admin, portal, command, api), action, object, fields from -> to."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=_day, default=None, metavar="DATE", help="UTC day")
        parser.add_argument(
            "--object", default=None, metavar="NAME", help="objects whose name contains NAME"
        )

    def handle(
        self, *args: Any, since: dt.datetime | None, object: str | None, **options: Any
    ) -> None:
        if not apps.is_installed("auditlog"):
            raise CommandError("django-auditlog is not installed (check llm_gateway.E009).")
        from auditlog.models import LogEntry

        records = LogEntry.objects.select_related("content_type", "actor").order_by(
            "timestamp", "id"
        )
        if since is not None:
            records = records.filter(timestamp__gte=since)
        if object is not None:
            records = records.filter(object_repr__icontains=object)
        for entry in records.iterator():
            self.stdout.write(audit.line(entry))
