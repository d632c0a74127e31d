from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from llm_gateway import keys
from llm_gateway.models import ApiKey


def _date(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _limit(value: int | None) -> str:
    return str(value) if value else "-"


class Command(BaseCommand):
    help = "List API keys and their limits (never their secrets)."

    def handle(self, *args: Any, **options: Any) -> None:
        rows = [
            ("NAME", "KEY", "STATUS", "CREATED", "LAST USED", "EXPIRES", "RPM", "TPM")
            + ("PARALLEL", "BUDGET", "MODELS")
        ]
        for key in ApiKey.objects.all():
            rows.append(
                (
                    key.name,
                    keys.display(key.prefix),
                    key.status,
                    _date(key.created_at),
                    _date(key.last_used_at),
                    _date(key.expires_at),
                    _limit(key.rpm),
                    _limit(key.tpm),
                    _limit(key.max_parallel),
                    f"{key.token_budget}/{key.budget_period}" if key.token_budget else "-",
                    key.allowed_models or "-",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )
