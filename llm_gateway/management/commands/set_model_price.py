from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import CommandError, CommandParser

from llm_gateway.conf import conf
from llm_gateway.management.audited import AuditedCommand
from llm_gateway.models import ModelPrice


def _price(value: str) -> Decimal:
    try:
        price = Decimal(value.strip())
    except InvalidOperation:
        raise CommandError(f"{value!r} is not a price") from None
    if not price.is_finite() or price < 0 or price != price.quantize(Decimal("0.000001")):
        raise CommandError(f"{value!r}: a price is 0 or more, with at most six decimal places")
    return price


class Command(AuditedCommand):
    help = (
        "Set a model's prices per million tokens (a name or a glob pattern such as llama-3-*; "
        "the most specific pattern wins), or --delete them. Applied by every gateway process "
        "within 5 seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", metavar="MODEL")
        parser.add_argument("--input", metavar="PRICE", help="input tokens, per million")
        parser.add_argument(
            "--cached-input", metavar="PRICE", help="cached input tokens (default: --input)"
        )
        parser.add_argument("--output", metavar="PRICE", help="output tokens, per million")
        parser.add_argument("--delete", action="store_true", help="remove the model's prices")

    def handle(
        self,
        *args: Any,
        model: str,
        input: str | None,
        cached_input: str | None,
        output: str | None,
        delete: bool,
        **options: Any,
    ) -> None:
        if delete:
            if not ModelPrice.objects.filter(pattern=model).delete()[0]:
                raise CommandError(f"No price for {model!r}.")
            self.stdout.write(f"{model}: unpriced")
            return
        row = ModelPrice.objects.filter(pattern=model).first()
        if row is None:
            if input is None or output is None:
                raise CommandError("A new price needs --input and --output.")
            row = ModelPrice(pattern=model)
        if input is not None:
            row.input = _price(input)
        if output is not None:
            row.output = _price(output)
        if cached_input is not None:
            row.cached_input = _price(cached_input)
        row.save()
        price = row.as_price()
        self.stdout.write(
            f"{model}: input {price.input.normalize():f}, cached input "
            f"{price.cached_input.normalize():f}, output {price.output.normalize():f} "
            f"{conf.CURRENCY} per million tokens (version {price.version})"
        )
