"""The limit flags of ``create_api_key``, ``set_api_key_limits``, ``set_user_limits`` and
``set_team_limits`` (one definition), and the lookups of a team and an owner by name."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import CommandError, CommandParser

from ..core.priority import CLASSES
from ..limits.spec import PERIODS, parse_models

NUMBERS = ("rpm", "tpm", "max_parallel", "token_budget", "share")  # flag dest = model field
CLASS_FIELDS = ("priority", "max_priority")
CLEAR = {"0", "none", ""}


def count(value: str) -> int | None:
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


def _money(value: str) -> Decimal | None:
    """An amount of money (at most six decimal places), or 0 / none: no budget."""
    if value.strip().lower() in CLEAR:
        return None
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{value!r} is not an amount (or 0/none)") from None
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not an amount of 0 or more")
    if amount != amount.quantize(Decimal("0.000001")):
        raise argparse.ArgumentTypeError(f"{value!r} has more than six decimal places")
    return amount or None


def _class(value: str) -> str:
    """A priority class, or none: inherited."""
    word = value.strip().lower()
    if word in CLEAR:
        return ""
    if word not in CLASSES:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(CLASSES)} (or none)")
    return word


def _models(value: str) -> str:
    if value.strip().lower() in CLEAR:
        return ""
    return ",".join(parse_models(value))


def add_limit_arguments(parser: CommandParser) -> None:
    """Flags left out are absent from the options (SUPPRESS): they change nothing."""
    group = parser.add_argument_group("limits (0 or none clears one)")
    unset = argparse.SUPPRESS
    group.add_argument("--rpm", type=count, default=unset, metavar="N", help="requests/minute")
    group.add_argument("--tpm", type=count, default=unset, metavar="N", help="tokens/minute")
    group.add_argument(
        "--max-parallel", type=count, default=unset, metavar="N", help="requests in flight"
    )
    group.add_argument(
        "--models", type=_models, default=unset, metavar="a,b*", help="names or glob patterns"
    )
    group.add_argument(
        "--token-budget", type=count, default=unset, metavar="N", help="tokens per period"
    )
    group.add_argument(
        "--cost-budget",
        type=_money,
        default=unset,
        metavar="AMOUNT",
        help="money per period, in LLM_GATEWAY_CURRENCY",
    )
    group.add_argument(
        "--budget-period", choices=PERIODS, default=unset, help="both budgets' period (UTC)"
    )
    fair = parser.add_argument_group("fair share of saturated engines ('none' clears one)")
    for flag, what in (("--priority", "its class"), ("--max-priority", "the highest it may ask")):
        fair.add_argument(flag, type=_class, default=unset, metavar="CLASS", help=what)
    fair.add_argument(
        "--share", type=count, default=unset, metavar="N", help="its weight among tenants"
    )


def limit_values(options: dict[str, Any]) -> dict[str, Any]:
    """The model fields the given flags set (``call_command`` passes values unconverted)."""
    values: dict[str, Any] = {}
    for name in NUMBERS:
        if name in options:
            value = options[name]
            values[name] = value if value is None else count(str(value))
    if "cost_budget" in options:
        value = options["cost_budget"]
        values["cost_budget"] = value if value is None else _money(str(value))
    if "models" in options:
        values["allowed_models"] = _models(str(options["models"] or ""))
    for name in CLASS_FIELDS:
        if name in options:
            values[name] = _class(str(options[name] or ""))
    if "budget_period" in options:
        if options["budget_period"] not in PERIODS:
            raise argparse.ArgumentTypeError("--budget-period is day or month")
        values["budget_period"] = options["budget_period"]
    return values


def set_limits(row: Any, options: dict[str, Any]) -> str:
    """Set the limits the flags give on a limits row (a key's, a user's, a team's) and save
    those fields; returns the row's limits as one line."""
    try:
        values = limit_values(options)
    except argparse.ArgumentTypeError as exc:
        raise CommandError(str(exc)) from None
    if values:
        for field, value in values.items():
            setattr(row, field, value)
        extra = ["updated_at"] if hasattr(row, "updated_at") else []
        row.save(update_fields=[*values, *extra])
    return str(row.limits_summary())


def team_named(name: str) -> Group:
    try:
        return Group.objects.get(name=name)
    except Group.DoesNotExist:
        raise CommandError(f"No team (group) named {name!r}.") from None


def user_named(username: str) -> Any:
    model = get_user_model()
    try:
        return model.objects.get(**{model.USERNAME_FIELD: username})
    except model.DoesNotExist:
        raise CommandError(f"No user named {username!r}.") from None
