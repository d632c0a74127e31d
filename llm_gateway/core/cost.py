"""What a request costs: prices per million tokens, and the arithmetic, exact.

Money is counted in whole micro-units (millionths of the currency): a budget in Redis adds
integers and never rounds, and a request's cost, kept with six decimal places, is the same
number. Prices have at most six decimal places (the price book's), so a price per million
tokens times a million is a whole number of "pico-units per token", and a request's cost is
integer arithmetic: about 0.1 us against 3 us for the same sum in Decimal, twice on every
priced request (its reservation, its settle). Decimal is made only for the request log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    _scaled: tuple[int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scaled = tuple(micro(price) for price in (self.input, self.cached_input, self.output))
        object.__setattr__(self, "_scaled", scaled)

    def micro_cost(self, prompt: int, cached: int, completion: int) -> int:
        """Cached prompt tokens at the cached price, the rest of the prompt at the input
        price, the completion at the output price; in micro-units, rounded up."""
        prompt, completion = max(prompt, 0), max(completion, 0)
        cached = min(max(cached, 0), prompt)
        scaled_input, scaled_cached, scaled_output = self._scaled
        pico = (prompt - cached) * scaled_input + cached * scaled_cached
        return -(-(pico + completion * scaled_output) // MILLION)

    def cost(self, prompt: int, cached: int, completion: int) -> Decimal:
        """``micro_cost`` as an amount of six decimal places."""
        return money(self.micro_cost(prompt, cached, completion))


def micro(amount: Decimal) -> int:
    """An amount as a whole number of micro-units (a fraction of one rounded up)."""
    return int((amount * MILLION).to_integral_value(rounding=ROUND_CEILING))


def money(units: int) -> Decimal:
    """Micro-units back to an amount of six decimal places."""
    return Decimal(units).scaleb(-6)
