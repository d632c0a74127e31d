"""The price book: model names or glob patterns, each with its prices; the most specific
pattern that matches a model wins (an exact name before any pattern, then the pattern with
the most literal characters, then the longer one)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from ..core.cost import Price

WILDCARDS = re.compile(r"[*?\[\]]")


def specificity(pattern: str) -> tuple[bool, int, int]:
    literal = len(WILDCARDS.sub("", pattern))
    return (WILDCARDS.search(pattern) is None, literal, len(pattern))


class PriceBook:
    """Immutable once built; a model's price is looked up once and kept."""

    def __init__(self, prices: Iterable[Price] = ()) -> None:
        ordered = sorted(prices, key=lambda p: specificity(p.pattern), reverse=True)
        self.exact = {p.pattern: p for p in ordered if WILDCARDS.search(p.pattern) is None}
        self.patterns = [
            (re.compile(fnmatch.translate(p.pattern)), p)
            for p in ordered
            if WILDCARDS.search(p.pattern) is not None
        ]
        self._found: dict[str, Price | None] = {}

    def __len__(self) -> int:
        return len(self.exact) + len(self.patterns)

    def price_for(self, model: str | None) -> Price | None:
        if model is None:
            return None
        try:
            return self._found[model]
        except KeyError:
            pass
        price = self.exact.get(model)
        if price is None:
            price = next((p for matcher, p in self.patterns if matcher.match(model)), None)
        if len(self._found) > 10_000:  # clients name models: bounded
            self._found.clear()
        self._found[model] = price
        return price
