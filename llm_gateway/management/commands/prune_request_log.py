"""``manage.py prune_request_log --older-than 30d``: retention, deleted in batches so that
the table is never locked for long (the daily rollups are kept)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from llm_gateway.models import RequestLog

_AGE = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(value: str) -> dt.timedelta:
    match = _AGE.match(value.strip())
    if not match:
        raise CommandError(f"--older-than takes an age such as 30d, 12h or 90m, not {value!r}.")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = "Delete request log rows older than an age (30d, 12h, 90m), in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", required=True, help="30d, 12h or 90m")
        parser.add_argument("--batch-size", type=int, default=10_000)

    def handle(self, *args: Any, older_than: str, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size takes a count above 0.")
        cutoff = timezone.now() - parse_age(older_than)
        deleted = batches = 0
        while True:
            ids = list(
                RequestLog.objects.filter(created_at__lt=cutoff)
                .order_by("created_at")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                break
            deleted += RequestLog.objects.filter(id__in=ids).delete()[0]
            batches += 1
        self.stdout.write(
            f"Deleted {deleted} request log rows older than {cutoff.isoformat()} "
            f"in {batches} batch(es)."
        )
