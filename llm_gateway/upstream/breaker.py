"""Passive health: what real requests tell of a replica, as a circuit breaker.

``eject_failures`` failures in a row (refused, reset, 5xx, a stream broken by the engine)
eject the replica for a cooldown; each ejection that follows without a success in between
doubles it, up to ``eject_max_seconds``. After the cooldown one trial request is let through
(half-open): its success closes the circuit, its failure ejects again. A 429 with
``Retry-After`` keeps requests off the replica that long. All of it per process: ``/health``
shows each replica's view (README "Several engines").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .options import BreakerOptions

logger = logging.getLogger(__name__)


class Breaker:
    __slots__ = (
        "name",
        "options",
        "clock",
        "failures",
        "ejected_until",
        "cooldown",
        "trial",
        "throttled_until",
    )

    def __init__(
        self,
        name: str,
        options: BreakerOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.options = options or BreakerOptions()
        self.clock = clock  # monotonic seconds (tests give their own)
        self.failures = 0  # in a row
        self.ejected_until = 0.0  # monotonic; 0: not ejected
        self.cooldown = 0.0  # the last ejection's; 0: none since the last success
        self.trial = False  # half-open: the one request that decides is under way
        self.throttled_until = 0.0  # the replica's own Retry-After

    @property
    def state(self) -> str:
        if not self.ejected_until:
            return "closed"
        return "half_open" if self.clock() >= self.ejected_until else "open"

    def available(self) -> bool:
        now = self.clock()
        if now < self.throttled_until:
            return False
        if not self.ejected_until:
            return True
        return now >= self.ejected_until and not self.trial

    def picked(self) -> None:
        if self.ejected_until and self.clock() >= self.ejected_until:
            self.trial = True  # until this request says how the replica is

    def succeeded(self) -> None:
        if self.ejected_until:
            logger.warning("upstream %s answers again: back in rotation", self.name)
        self.failures, self.ejected_until, self.cooldown, self.trial = 0, 0.0, 0.0, False

    def failed(self) -> None:
        self.failures += 1
        options = self.options
        if self.trial or (not self.ejected_until and self.failures >= options.eject_failures):
            first = options.eject_seconds
            self.cooldown = min(
                self.cooldown * 2 if self.cooldown else first, options.eject_max_seconds
            )
            self.ejected_until = self.clock() + self.cooldown
            self.trial = False
            logger.warning(
                "upstream %s ejected for %.1f s after %d failures in a row",
                self.name,
                self.cooldown,
                self.failures,
            )

    def throttle(self, seconds: float) -> None:
        self.throttled_until = max(self.throttled_until, self.clock() + seconds)

    def ejected_for(self) -> float | None:
        """Seconds of cooldown left (for /health), None when not ejected."""
        if not self.ejected_until:
            return None
        return max(self.ejected_until - self.clock(), 0.0)
