"""The price book: the most specific pattern that matches a model wins."""

from decimal import Decimal

from llm_gateway.core.cost import Price
from llm_gateway.pricing.book import PriceBook


def price(pattern: str, output: str = "1") -> Price:
    return Price(pattern, Decimal(1), Decimal(1), Decimal(output))


def test_an_exact_name_beats_every_pattern_and_longer_literals_beat_shorter():
    book = PriceBook(
        [
            price("*", "9"),
            price("llama-3-*", "3"),
            price("llama-3-8b*", "2"),
            price("llama-3-8b", "1"),
        ]
    )
    assert book.price_for("llama-3-8b").output == 1
    assert book.price_for("llama-3-8b-instruct").output == 2
    assert book.price_for("llama-3-70b").output == 3
    assert book.price_for("qwen").output == 9
    assert len(book) == 4


def test_an_unpriced_model_has_no_price():
    book = PriceBook([price("llama-*")])
    assert book.price_for("qwen") is None and book.price_for(None) is None
    assert PriceBook().price_for("x") is None and not PriceBook()
