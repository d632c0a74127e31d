"""What a request costs: prices per million tokens, and the arithmetic, exact in Decimal.

Money in the limits' counters is a whole number of micro-units (millionths of the currency),
so a budget in Redis adds integers and never rounds; a request's cost is kept with six
decimal places, which is the same number.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

MILLION = 1_000_000
PLACES = Decimal("0.000001")  # six decimal places: the request log's and the budgets' unit


@dataclass(frozen=True, slots=True)
class Price:
    """Prices per million tokens; ``version`` names the price-book row as it was then."""

    pattern: str
    input: Decimal
    cached_input: Decimal
    output: Decimal
    version: int = 0

    def cost(self, prompt: int, cached: int, completion: int) -> Decimal:
        """Cached prompt tokens at the cached price, the rest of the prompt at the input
        price, the completion at the output price; rounded up to the micro-unit."""
        cached = min(max(cached, 0), max(prompt, 0))
        amount = (
            (max(prompt, 0) - cached) * self.input
            + cached * self.cached_input
            + max(completion, 0) * self.output
        ) / MILLION
        return amount.quantize(PLACES, rounding=ROUND_CEILING)


def micro(amount: Decimal) -> int:
    """A cost (six places) as a whole number of micro-units."""
    return int(amount.quantize(PLACES, rounding=ROUND_CEILING) * MILLION)


def money(units: int) -> Decimal:
    """Micro-units back to a Decimal amount of six places."""
    return (Decimal(units) / MILLION).quantize(PLACES)
