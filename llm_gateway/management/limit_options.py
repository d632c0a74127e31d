"""The limit flags of ``create_api_key`` and ``set_api_key_limits`` (one definition)."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandParser

from ..limits.spec import PERIODS, parse_models

NUMBERS = ("rpm", "tpm", "max_parallel", "token_budget")  # flag dest = model field
CLEAR = {"0", "none", ""}


def _count(value: str) -> int | None:
    """A positive count, or 0 / none: no limit."""
    if value.strip().lower() in CLEAR:
        return None
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number (or 0/none)") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is below 0")
    return number or None


def _models(value: str) -> str:
    if value.strip().lower() in CLEAR:
        return ""
    return ",".join(parse_models(value))


def add_limit_arguments(parser: CommandParser) -> None:
    """Flags left out are absent from the options (SUPPRESS): they change nothing."""
    group = parser.add_argument_group("limits (0 or none clears one)")
    unset = argparse.SUPPRESS
    group.add_argument("--rpm", type=_count, default=unset, metavar="N", help="requests/minute")
    group.add_argument("--tpm", type=_count, default=unset, metavar="N", help="tokens/minute")
    group.add_argument(
        "--max-parallel", type=_count, default=unset, metavar="N", help="requests in flight"
    )
    group.add_argument(
        "--models", type=_models, default=unset, metavar="a,b*", help="names or glob patterns"
    )
    group.add_argument(
        "--token-budget", type=_count, default=unset, metavar="N", help="tokens per period"
    )
    group.add_argument(
        "--budget-period", choices=PERIODS, default=unset, help="the budget's period (UTC)"
    )


def limit_values(options: dict[str, Any]) -> dict[str, Any]:
    """The model fields the given flags set (``call_command`` passes values unconverted)."""
    values: dict[str, Any] = {}
    for name in NUMBERS:
        if name in options:
            value = options[name]
            values[name] = value if value is None else _count(str(value))
    if "models" in options:
        values["allowed_models"] = _models(str(options["models"] or ""))
    if "budget_period" in options:
        if options["budget_period"] not in PERIODS:
            raise argparse.ArgumentTypeError("--budget-period is day or month")
        values["budget_period"] = options["budget_period"]
    return values
