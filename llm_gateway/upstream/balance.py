"""How a replica is chosen among those that serve the model and are available.

- ``least_outstanding``: the fewest requests in flight from this process (per unit of
  weight), ties broken at random; where the engines' own queues are read (the scheduler),
  their waiting requests count too, so a replica reporting a long queue gets fewer.
- ``round_robin``: each in turn.
- ``prefix_affinity``: consistent hashing with bounded loads (Mirrokni, Thorup and
  Zadimoghaddam, 2018). A request's key (its session, user or prompt prefix) lands on a ring
  of virtual nodes; the first replica from there whose load after this request stays within
  ``c`` times the average takes it. Conversations stay with the replica that holds their
  prefix in cache, no replica takes more than its share, and different conversations spread
  even at low concurrency. Without a key it is ``least_outstanding``.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

VIRTUAL_NODES = 160  # per unit of weight: shares within a few percent


class Replica(Protocol):
    name: str
    weight: float
    in_flight: int


def key_hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def least_outstanding(
    candidates: Sequence[Replica], queued: Callable[[Replica], float] | None = None
) -> Replica:
    """``queued``: what waits on a replica besides this process's requests (its engine's
    queue, as last read)."""
    if len(candidates) == 1:
        return candidates[0]
    if queued is None:
        loads = [c.in_flight / c.weight for c in candidates]
    else:
        loads = [(c.in_flight + queued(c)) / c.weight for c in candidates]
    best = min(loads)
    tied = [c for c, load in zip(candidates, loads, strict=True) if load == best]
    return tied[0] if len(tied) == 1 else random.choice(tied)


class RoundRobin:
    def __init__(self) -> None:
        self._turn = itertools.count()

    def __call__(self, candidates: Sequence[Replica]) -> Replica:
        return candidates[next(self._turn) % len(candidates)]


class Ring:
    """The replicas' virtual nodes on a 64-bit ring (built once per pool)."""

    def __init__(self, replicas: Sequence[Replica]) -> None:
        points = []
        for index, replica in enumerate(replicas):
            for node in range(max(1, round(VIRTUAL_NODES * replica.weight))):
                points.append((key_hash(f"{replica.name}#{node}".encode()), index))
        points.sort()
        self._positions = [position for position, _ in points]
        self._owners = [index for _, index in points]
        self._replicas = list(replicas)

    def walk(self, key: int) -> Iterator[Replica]:
        """The replicas met going round the ring from ``key`` (each may come again)."""
        start = bisect.bisect(self._positions, key)
        owners, replicas, count = self._owners, self._replicas, len(self._owners)
        for offset in range(count):
            yield replicas[owners[(start + offset) % count]]

    def pick(self, key: int, candidates: Sequence[Replica], factor: float) -> Replica:
        """The first candidate round the ring that stays within its bound once it takes this
        request: ``ceil(factor * requests in flight after it / replicas)``, by weight."""
        if len(candidates) == 1:
            return candidates[0]
        total = sum(c.in_flight for c in candidates) + 1
        share = factor * total / sum(c.weight for c in candidates)
        allowed = {id(c) for c in candidates}
        first: Replica | None = None
        for replica in self.walk(key):
            if id(replica) not in allowed:
                continue
            if replica.in_flight + 1 <= math.ceil(share * replica.weight - 1e-9):
                return replica
            if first is None:
                first = replica
        return first or candidates[0]
