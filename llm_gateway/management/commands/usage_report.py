"""``manage.py usage_report [--by team|owner|key|model] [--key NAME] [--since YYYY-MM-DD]
[--until YYYY-MM-DD] [--json] [--requests N]``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from llm_gateway.reporting import queries as reports

COLUMNS: tuple[str, ...] = (
    "key",
    "model",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "unpriced",
    "errors",
)
TOTAL_COLUMNS = COLUMNS[2:]


def _date(value: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{flag} takes a date as YYYY-MM-DD, not {value!r}.") from None


class Command(BaseCommand):
    help = (
        "Usage and cost per key and model (or --by team, owner, key or model) from the daily "
        "rollups, or the last request records."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key", help="one key's usage (its name)")
        parser.add_argument("--by", choices=sorted(reports.GROUPS), help="one total per ...")
        parser.add_argument("--since", help="from this day on (YYYY-MM-DD, UTC)")
        parser.add_argument("--until", help="up to this day, included (YYYY-MM-DD, UTC)")
        parser.add_argument("--json", action="store_true", help="a JSON list instead of a table")
        parser.add_argument(
            "--requests", type=int, metavar="N", help="the last N request records instead"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        key, as_json, count = options["key"], options["json"], options["requests"]
        if count is not None:
            if count < 1:
                raise CommandError("--requests takes a count above 0.")
            rows = reports.last_requests(count, key)
            columns = reports.RECORD_COLUMNS
        else:
            since = _date(options["since"], "--since") if options["since"] else None
            until = _date(options["until"], "--until") if options["until"] else None
            if options["by"]:
                rows = reports.grouped(options["by"], since, until, key)
                columns = (options["by"], *TOTAL_COLUMNS)
            else:
                rows = reports.by_key_and_model(key, since, until)
                columns = COLUMNS
        if as_json:
            self.stdout.write(json.dumps(rows, default=str))
            return
        table = [
            columns,
            *[tuple("-" if r[c] is None else str(r[c]) for c in columns) for r in rows],
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
        for row in table:
            self.stdout.write(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            )
