"""One request's life in the core, from arrival to its record: what a relayed HTTP exchange
and a realtime session share, so that both are admitted, leased, ended and observed alike.

``observe`` tells the observers it arrived (each may tap its answer), ``admit`` asks every
policy (each may refuse, or hold something until the end). The dispatch holds the lease on the
replica. ``end`` says how it ended (the first call counts) and frees the replica at once;
``close`` settles the admissions and hands the record to the taps and observers.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..upstream.pool import UpstreamPool
from .dispatch import Dispatch
from .hooks import Admission, Observer, Policy, Tap
from .options import RelayOptions
from .record import RequestRecord
from .request import GatewayRequest
from .schedule import Scheduler

logger = logging.getLogger(__name__)


class Parts(Protocol):
    """What a lifecycle takes of its relay (``relay.Relay``)."""

    pool: UpstreamPool
    options: RelayOptions
    policies: list[Policy]
    observers: list[Observer]
    scheduler: Scheduler | None


class Lifecycle:
    __slots__ = (
        "relay",
        "request",
        "record",
        "taps",
        "admissions",
        "dispatch",
        "_ended",
        "_observed",
    )

    def __init__(self, relay: Parts, request: GatewayRequest) -> None:
        self.relay = relay
        self.request = request
        self.record = RequestRecord(
            request.request_id, request.method, request.path, request.api_key, request.client
        )
        self.record.bytes_in = len(request.body)
        self.taps: list[Tap] = []
        self.admissions: list[Admission] = []
        self.dispatch = Dispatch(relay.pool, relay.options, relay.scheduler)
        self._ended = False
        self._observed = False

    @property
    def ended(self) -> bool:
        return self._ended

    def observe(self) -> None:
        """Tell the observers it arrived (each may tap it); once."""
        if self._observed:
            return
        self._observed = True
        request, record = self.request, self.record
        for observer in self.relay.observers:
            if (tap := observer.begin(request, record)) is not None:
                self.taps.append(tap)
                if type(tap).attempt is not Tap.attempt:
                    self.dispatch.watchers.append(tap)

    async def admit(self) -> None:
        """Tell the observers (if not yet), then ask the policies (a refusal is a
        ``GatewayError``)."""
        self.observe()
        request, record = self.request, self.record
        for policy in self.relay.policies:
            if (admission := await policy.admit(request, record)) is not None:
                self.admissions.append(admission)

    def admission_headers(self) -> list[tuple[bytes, bytes]]:
        """What the admissions add to every answer (the limits' headers)."""
        return [h for admission in self.admissions for h in admission.headers]

    def end(self, ending: str, failed: bool = False) -> bool:
        """How the request ended; the first call counts (returns whether this one did).
        Frees the replica at once; ``failed`` counts the ending against it."""
        if self._ended:
            return False
        self._ended = True
        self.record.ending = ending
        lease = self.dispatch.lease
        if lease is not None:
            lease.release(failed=failed)
        return True

    def close(self) -> None:
        """The request is over: settle the admissions, tell the taps and the observers."""
        if not self._ended:
            self.end("done")
        record = self.record
        record.duration = record.since_start()
        self.dispatch.finished(record)
        for admission in self.admissions:
            _safely(admission.settle, record)
        for tap in self.taps:
            _safely(tap.finish, record)
        for observer in self.relay.observers:
            _safely(observer.finish, record)
        self.admissions, self.taps = [], []


def _safely(function: Any, record: RequestRecord) -> None:
    """An observer's or policy's failure is logged; it never breaks a request."""
    try:
        function(record)
    except Exception:
        logger.exception("%r failed on request %s", function, record.request_id)
