"""Open: pick a replica of the request's model and send, failing over before the first byte.

A replica that refuses the connection, resets it, or answers 502, 503 or 504 hands the
request to another replica of the model, at most ``RETRIES`` times; nothing has reached the
client yet, so nothing is lost. A read timeout is not retried (the engine may still be at
work), nor is a 4xx (it is the answer). A 429's ``Retry-After`` keeps later requests off that
replica. The record lists the replicas that failed (``tried``).

With the scheduler on (``schedule``), the first replica is the scheduler's: the request waits
while every replica of its model is saturated, in its class and its tenant's turn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from ..errors import EngineDeadError, EngineGenerateError, EngineTimeoutError, GatewayError
from ..upstream.client import Answer, Upstream
from ..upstream.pool import Lease, UpstreamPool
from . import headers as header_policy
from .affinity import affinity_key
from .hooks import Tap
from .listing import model_listing
from .options import RelayOptions
from .priority import CLASSES, DEFAULT_RANK, NO_FAIR_SHARE, PRIORITY_HEADER, Tenant, asked_rank
from .record import RequestRecord
from .request import GatewayRequest
from .schedule import Scheduler
from .usage import prompt_text_length

RETRIED_STATUSES = frozenset({502, 503, 504})
MAX_THROTTLE_SECONDS = 300.0  # a replica's Retry-After is honoured up to this long


class Dispatch:
    __slots__ = ("pool", "options", "lease", "scheduler", "tenant", "rank", "watchers")

    def __init__(
        self, pool: UpstreamPool, options: RelayOptions, scheduler: Scheduler | None = None
    ) -> None:
        self.pool = pool
        self.options = options
        self.lease: Lease | None = None  # on the replica now serving (released by the core)
        self.scheduler = scheduler if scheduler is not None and scheduler.options.enabled else None
        self.tenant: Tenant | None = None  # set by ``prepare`` when the scheduler is on
        self.rank = DEFAULT_RANK
        self.watchers: list[Tap] = []  # the taps told of every try (a tracer's)

    def prepare(self, request: GatewayRequest, record: RequestRecord) -> None:
        """The request's class and tenant (before admission: a bad priority header is a 400)."""
        scheduler = self.scheduler
        if scheduler is None:
            return
        fair = request.api_key.fair if request.api_key is not None else None
        fair = fair or NO_FAIR_SHARE
        self.rank = asked_rank(fair, request.header(PRIORITY_HEADER))
        self.tenant = fair.tenant(scheduler.options.fairness_by)
        record.priority = CLASSES[self.rank]

    @property
    def replicated(self) -> bool:
        return len(self.pool.upstreams) > 1

    async def send(self, request: GatewayRequest, record: RequestRecord, body: bytes) -> Answer:
        """The answer's status line from a replica of the model."""
        pool = self.pool
        if not pool.looked:  # the first requests of a process: the models known first
            await pool.first_look()
        affinity = None
        if pool.routing == "prefix_affinity" and self.replicated:
            affinity = affinity_key(request, self.options.affinity_prefix_chars)
        tried: list[Upstream] = []
        failed: GatewayError | None = None
        scheduled: Lease | None = None
        if self.scheduler is not None and self.tenant is not None:
            tokens = prompt_text_length(request.payload) / 4 if request.payload else 0.0
            scheduled, record.queued = await self.scheduler.turn(
                record.model, self.tenant, self.rank, affinity, tokens
            )
        while True:
            try:
                if scheduled is not None:
                    self.lease, scheduled = scheduled, None
                    lease = self.lease
                else:
                    self.lease = lease = pool.acquire(record.model, affinity, tried)
            except GatewayError:
                if failed is not None:
                    raise failed from None  # no replica left: the last failure is the answer
                raise
            upstream = lease.upstream
            record.upstream = upstream.name
            url = upstream.url + request.path
            if request.query:
                url += "?" + request.query.decode("latin-1")
            watchers = self.watchers
            own = [h for tap in watchers for h in tap.attempt(upstream)] if watchers else []
            try:
                headers = self._headers(request, upstream, own)
                answer = await upstream.send(
                    request.method, url, headers=headers, body=body or None
                )
            except GatewayError as exc:
                for tap in watchers:
                    tap.attempted(0, exc)
                self._drop(failed=True)
                if not _retryable(exc) or len(tried) >= self.options.retries:
                    raise
                failed = exc
            else:
                for tap in watchers:
                    tap.attempted(answer.status, None)
                lease.answered(answer.status)
                if answer.status == 429:
                    _honour_retry_after(upstream, answer)
                if answer.status not in RETRIED_STATUSES or len(tried) >= self.options.retries:
                    return answer
                answer.close()
                self._drop(failed=False)  # the status line already counted against it
                failed = EngineGenerateError(
                    f"The engine answered HTTP {answer.status} on every replica tried."
                )
            tried.append(upstream)
            record.tried.append(upstream.name)

    def acquire(self, model: str | None) -> Upstream:
        """A lease on a replica of ``model`` for a session that cannot fail over (realtime)."""
        self.lease = lease = self.pool.acquire(model)
        return lease.upstream

    def finished(self, record: RequestRecord) -> None:
        """The request ended: its output tokens count for its tenant's fair share."""
        if self.scheduler is not None and self.tenant is not None:
            self.scheduler.finished(self.tenant, record.completion_tokens or 0)

    async def listing(self, request: GatewayRequest) -> bytes:
        return await model_listing(self.pool, lambda upstream: self._headers(request, upstream))

    def _headers(
        self, request: GatewayRequest, upstream: Upstream, own: Sequence[tuple[str, str]] = ()
    ) -> list[tuple[str, str]]:
        return header_policy.to_upstream(
            request.headers,
            request.request_id,
            self.options.request_id_header,
            upstream.auth_headers(),
            own,
        )

    def _drop(self, failed: bool) -> None:
        if self.lease is not None:
            self.lease.release(failed=failed)
            self.lease = None


def _retryable(error: GatewayError) -> bool:
    """Refused or reset before answering (not a timeout: the engine may still be at work)."""
    return isinstance(error, (EngineDeadError, EngineGenerateError)) and not isinstance(
        error, EngineTimeoutError
    )


def _honour_retry_after(upstream: Upstream, answer: Answer) -> None:
    for name, value in answer.raw_headers:
        if name.lower() == b"retry-after":
            with contextlib.suppress(ValueError):
                upstream.breaker.throttle(min(float(value), MAX_THROTTLE_SECONDS))
            return
