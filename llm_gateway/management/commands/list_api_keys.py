from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from llm_gateway import keys
from llm_gateway.models import ApiKey


def _date(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


class Command(BaseCommand):
    help = "List API keys (never their secrets)."

    def handle(self, *args: Any, **options: Any) -> None:
        rows = [("NAME", "KEY", "STATUS", "CREATED", "LAST USED", "EXPIRES")]
        for key in ApiKey.objects.all():
            rows.append(
                (
                    key.name,
                    keys.display(key.prefix),
                    key.status,
                    _date(key.created_at),
                    _date(key.last_used_at),
                    _date(key.expires_at),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )
