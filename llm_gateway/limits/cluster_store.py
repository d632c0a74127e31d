"""The limits on a Redis Cluster: ``redis_store``'s scripts, one call per slot.

A key's counters and its owner's share the owner's hash tag, so a key without a team is one
slot and one script call, as on a single server. A team's counters carry the team's tag (every
member's keys count there), so a team's key touches two slots: its request reserves in both
at once (two scripts, two masters, concurrently) and, when one refuses or fails, gives back
what the other reserved. All or none still holds for what is admitted; a refusal is the
refusing slot's own (its limit, its retry time). The only effect of the split: while a
refused request's reservation in the other slot is given back (one round trip), a request
near that slot's limit may be refused for it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import hiredis
from redis.crc import key_slot

from .redis_client import RedisUnavailable, bulk, failure
from .redis_cluster import ClusterConnection
from .redis_store import ADMIT, RENEW, SETTLE, Shape, admit_args, decision_of, settle_deltas
from .store import Check, Decision

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Part:
    """The checks of one request that live in one slot: where they are in the request's
    checks, their keys, ``ADMIT``'s arguments but the last two, and those packed."""

    slot: int
    indexes: list[int]
    keys: list[str]
    args: list[Any]
    head: bytes


def not_run(reply: Any) -> bool:
    """A reply saying the command did not run (``MOVED``, ``ASK``, ``NOSCRIPT``): safe to send
    again."""
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith(
        ("MOVED ", "ASK ", "NOSCRIPT")
    )


def by_slot(counters: list[str]) -> list[list[int]]:
    """The indexes of ``counters`` grouped by cluster slot, in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for index, counter in enumerate(counters):
        groups.setdefault(key_slot(counter.encode()), []).append(index)
    return list(groups.values())


class ClusterStore:
    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self._cluster: ClusterConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: set[asyncio.Future[Any]] = set()
        self._parts: dict[tuple[Shape, float], list[Part]] = {}
        self._groups: dict[tuple[str, ...], list[list[int]]] = {}  # settle's, per key

    def cluster(self) -> ClusterConnection:
        loop = asyncio.get_running_loop()
        if self._cluster is None or self._loop is not loop:
            self._cluster = ClusterConnection(self.url, self.timeout, (ADMIT, SETTLE, RENEW))
            self._loop = loop
        return self._cluster

    async def admit(self, checks: list[Check], lease: str, lease_seconds: float) -> Decision:
        shape = tuple((c.counter, c.code, c.limit, c.period_end) for c in checks)
        parts = self._parts.get((shape, lease_seconds))
        if parts is None:
            parts = self._split(shape, lease_seconds)
        cluster = self.cluster()
        # Every slot's script goes out in this loop iteration (one write per master), then
        # the replies are read: the slots reserve at once, without a task each.
        sent = []
        for part in parts:
            amounts = ",".join([str(checks[i].amount) for i in part.indexes])
            command = part.head + bulk(amounts) + bulk(lease)
            sent.append((cluster.serving(part.slot).send_nowait(command), amounts))
        replies: list[Decision | RedisUnavailable] = []
        for part, (future, amounts) in zip(parts, sent, strict=True):
            try:
                reply = None if future is None else await future
                if reply is None or not_run(reply):  # not connected, or redirected: again
                    args = [*part.args, amounts, lease]
                    reply = await cluster.evalsha(ADMIT, part.keys, args)
                elif isinstance(reply, hiredis.ReplyError):
                    raise failure(reply)
                replies.append(decision_of(reply))
            except RedisUnavailable as exc:
                cluster.refresh_soon()  # a failover changes the map
                replies.append(exc)
        if len(parts) == 1:
            if isinstance(replies[0], RedisUnavailable):
                raise replies[0]
            decision = replies[0]
            decision.seconds = [decision.second] * len(checks)
            return decision
        decisions = [reply for reply in replies if isinstance(reply, Decision)]
        failed = [reply for reply in replies if isinstance(reply, RedisUnavailable)]
        if failed or any(decision.refused is not None for decision in decisions):
            for part, reply in zip(parts, replies, strict=True):
                if isinstance(reply, Decision) and reply.refused is None:
                    self._release([checks[i] for i in part.indexes], reply, lease)
            if failed:
                raise failed[0]
        return merged([part.indexes for part in parts], decisions, len(checks))

    def _split(self, shape: Shape, lease_seconds: float) -> list[Part]:
        """The slots of a key's checks, each with its packed head (cached, as ``RedisStore``
        caches one)."""
        if len(self._parts) > 10_000:
            self._parts.clear()
        parts = []
        for indexes in by_slot([counter for counter, *_ in shape]):
            keys = [shape[i][0] for i in indexes]
            args = admit_args(tuple(shape[i] for i in indexes), lease_seconds)
            head = ADMIT.head(keys, args, extra=2)
            parts.append(Part(key_slot(keys[0].encode()), indexes, keys, args, head))
        self._parts[(shape, lease_seconds)] = parts
        return parts

    def _release(self, checks: list[Check], decision: Decision, lease: str) -> None:
        """Give back all a slot reserved for a request another slot refused."""
        deltas = [f"{check.code}:{-check.amount}" for check in checks]
        args = [decision.second, lease, ";".join(deltas)]
        self._spawn(self.cluster().evalsha(SETTLE, [c.counter for c in checks], args), "release")

    def settle(
        self, checks: list[Check], decision: Decision, lease: str, actual: int, cost: int = 0
    ) -> None:
        seconds = decision.seconds or [decision.second] * len(checks)
        cluster = self.cluster()
        counters = tuple([check.counter for check in checks])
        groups = self._groups.get(counters)
        if groups is None:
            if len(self._groups) > 10_000:
                self._groups.clear()
            groups = self._groups[counters] = by_slot(list(counters))
        for group in groups:
            keys, deltas = settle_deltas([checks[i] for i in group], actual, cost)
            if not keys:
                continue
            args = [seconds[group[0]], lease, ";".join(deltas)]
            reply = cluster.serving(key_slot(keys[0].encode())).send_nowait(
                SETTLE.command(keys, args)
            )
            if reply is None:  # not connected: connect first
                self._spawn(cluster.evalsha(SETTLE, keys, args), "settle")
            else:
                self._pending.add(reply)
                reply.add_done_callback(partial(self._settled, keys, args))

    def _settled(self, keys: list[str], args: list[Any], reply: asyncio.Future[Any]) -> None:
        self._pending.discard(reply)
        error = reply.exception() if not reply.cancelled() else None
        if error is None and isinstance(reply.result(), hiredis.ReplyError):
            if not_run(reply.result()):  # redirected or unknown script: it did not run
                self._spawn(self.cluster().evalsha(SETTLE, keys, args), "settle")
                return
            error = reply.result()
        if error is not None:
            logger.warning("limits settle failed: %s", error)

    def renew(self, held: dict[str, list[str]], lease_seconds: float) -> None:
        counters = list(held)
        for group in by_slot(counters):
            args: list[Any] = [int(lease_seconds * 1000)]
            for i in group:
                args += (len(held[counters[i]]), *held[counters[i]])
            keys = [counters[i] for i in group]
            self._spawn(self.cluster().evalsha(RENEW, keys, args), "lease renewal")

    def _spawn(self, call: Any, what: str) -> None:
        task = asyncio.ensure_future(call)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._done(done, what))

    def _done(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Reservations then run out with their window or lease: nothing is held forever.
            logger.warning("limits %s failed: %s", what, task.exception())

    async def aclose(self) -> None:
        waiting = [*self._tasks, *self._pending]
        if waiting:
            await asyncio.wait(waiting, timeout=self.timeout)
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def merged(groups: list[list[int]], decisions: list[Decision], count: int) -> Decision:
    """One decision from each slot's, in the checks' order; the first refusing check's
    refusal (key, owner, then team)."""
    used, resets, seconds = [0] * count, [0.0] * count, [0] * count
    refused: tuple[int, Decision] | None = None
    for group, decision in zip(groups, decisions, strict=True):
        for position, index in enumerate(group):
            used[index] = decision.used[position]
            resets[index] = decision.resets[position]
            seconds[index] = decision.second
        if decision.refused is not None:
            index = group[decision.refused]
            if refused is None or index < refused[0]:
                refused = (index, decision)
    first = refused[1] if refused else decisions[0]
    return Decision(
        refused[0] if refused else None,
        first.too_large,
        first.retry_after,
        decisions[0].second,
        used,
        resets,
        seconds,
    )
