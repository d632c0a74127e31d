"""A request's cost from its usage: exact (integers of micro-units, the same as the Decimal
sum rounded up), cached tokens at the cached price."""

from decimal import ROUND_CEILING, Decimal, localcontext

from hypothesis import given
from hypothesis import strategies as st

from llm_gateway.core.cost import Price, micro, money

PRICE = Price("m", Decimal("0.15"), Decimal("0.075"), Decimal("0.60"), 3)


def test_cost_prices_each_kind_of_token_apart():
    # 1000 prompt tokens of which 400 cached, 500 completion tokens, per million:
    expected = (600 * Decimal("0.15") + 400 * Decimal("0.075") + 500 * Decimal("0.60")) / 10**6
    assert PRICE.cost(1000, 400, 500) == expected == Decimal("0.00042")
    assert PRICE.cost(0, 0, 0) == 0


def test_cached_tokens_never_exceed_the_prompt_and_nothing_is_negative():
    assert PRICE.cost(10, 50, 0) == PRICE.cost(10, 10, 0)
    assert PRICE.cost(-5, -1, -1) == 0


def test_a_fraction_of_a_micro_unit_is_rounded_up():
    assert PRICE.cost(1, 0, 0) == Decimal("0.000001")  # 0.00000015, never free
    assert micro(Decimal("0.0000001")) == 1 and micro(Decimal("1.5")) == 1_500_000
    assert money(1_500_000) == Decimal("1.500000")


@given(
    prices=st.tuples(*[st.decimals(0, 1000, places=6) for _ in range(3)]),
    tokens=st.tuples(*[st.integers(-10, 10**9) for _ in range(3)]),
)
def test_the_integer_arithmetic_is_the_decimal_sum_rounded_up(prices, tokens):
    price = Price("m", *prices)
    prompt, cached, completion = tokens
    prompt, completion = max(prompt, 0), max(completion, 0)
    cached = min(max(cached, 0), prompt)
    with localcontext() as context:
        context.prec = 60  # the reference sum exact, whatever its size
        exact = (
            (prompt - cached) * prices[0] + cached * prices[1] + completion * prices[2]
        ) / 10**6
        expected = exact.quantize(Decimal("0.000001"), rounding=ROUND_CEILING)
    assert price.cost(*tokens) == expected
    assert price.micro_cost(*tokens) == micro(expected)
