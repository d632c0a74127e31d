"""What the core tells observers about each request, once it has ended."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .cost import Price
from .request import Principal


@dataclass(slots=True)
class RequestRecord:
    """One relayed request. Times are seconds: ``started`` on the monotonic clock, the rest
    relative to it. ``ending``: ``done``, ``client_disconnected``, ``error:<code>`` or
    ``upstream_closed`` (a stream that ended without ``[DONE]``)."""

    request_id: str
    method: str
    path: str
    api_key: Principal | None
    client: str | None = None
    created: float = field(default_factory=time.time)  # wall clock, for the request log
    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    upstream: str | None = None
    status: int = 0
    stream: bool = False
    bytes_in: int = 0
    bytes_out: int = 0
    ttfb: float | None = None
    ttft: float | None = None
    duration: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    usage_source: str = ""  # engine, counted (content events relayed) or estimated
    # The limit that refused it (requests, tokens, parallel, budget), or "unchecked" (served
    # while the limits store was unreachable) or "unavailable" (refused for that reason).
    limited: str = ""
    tried: list[str] = field(default_factory=list)  # replicas that failed before ``upstream``
    price: Price | None = None  # the price-book entry for ``model`` (None: unpriced)
    # micro-units of the currency (``core.cost``), set when the request settles (``pricing``)
    cost_micro: int | None = None
    ending: str | None = None
    priority: str = ""  # its class, where the scheduler is on
    queued: float = 0.0  # seconds it waited in the gateway queue

    def since_start(self) -> float:
        return time.perf_counter() - self.started
