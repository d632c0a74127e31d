"""The cost of every request: its model's price found at admission (the limits reserve a
money budget's worst case from it), its cost worked out from its usage when it settles, and
put on its record for the request log and the budgets.

The price book lives in memory: read from the database on the first request (one query, as
the key store's first read) and again in the background every ``cache_seconds``, so a
price changed in the admin is applied within that time and no request waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async

from ..core.cost import Price
from ..core.hooks import Admission, Policy
from ..core.record import RequestRecord
from ..core.request import GatewayRequest
from .book import PriceBook

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PricingOptions:
    cache_seconds: float = 5.0  # how often the price book is read again


class Costing(Admission):
    """One for every priced request (it holds nothing): works out the cost at settle."""

    def settle(self, record: RequestRecord) -> None:
        price = record.price
        if price is None:
            return
        if record.prompt_tokens is None and record.completion_tokens is None:
            if record.ttfb is None:  # no answer came: nothing to pay
                record.cost_micro = 0
            return  # answered, usage unknown: the budgets keep what they reserved
        record.cost_micro = price.micro_cost(
            record.prompt_tokens or 0, record.cached_tokens or 0, record.completion_tokens or 0
        )


COSTING = Costing()


class PricingPolicy(Policy):
    def __init__(
        self, options: PricingOptions, rows: Callable[[], list[Price]], clock: Any = time.monotonic
    ) -> None:
        self.options, self.rows, self.clock = options, rows, clock
        self.book: PriceBook | None = None
        self._next = 0.0
        self._refresh: asyncio.Task[None] | None = None

    async def admit(self, request: GatewayRequest, record: RequestRecord) -> Admission | None:
        book = self.book
        if book is None:
            book = await self._load()
        elif self.clock() >= self._next and self._refresh is None:
            self._refresh = asyncio.get_running_loop().create_task(self._reload())
        if not book:
            return None
        record.price = price = book.price_for(record.model)
        return COSTING if price is not None else None

    async def _load(self) -> PriceBook:
        try:
            rows = await sync_to_async(self.rows)()
        except Exception as exc:  # the database is down: no prices yet, try again later
            logger.warning("price book unreadable, keeping the prices known: %s", exc)
            self._next = self.clock() + self.options.cache_seconds
            if self.book is None:
                self.book = PriceBook()  # until the next read: unpriced, no query per request
            return self.book
        self.book = PriceBook(rows)
        self._next = self.clock() + self.options.cache_seconds
        return self.book

    async def _reload(self) -> None:
        try:
            await self._load()
        finally:
            self._refresh = None

    async def aclose(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)
            self._refresh = None
