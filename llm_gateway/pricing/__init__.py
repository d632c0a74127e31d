"""Prices per model (the price book) and the cost of each request."""

from .book import PriceBook
from .policy import PricingOptions, PricingPolicy

__all__ = ["PriceBook", "PricingOptions", "PricingPolicy"]
