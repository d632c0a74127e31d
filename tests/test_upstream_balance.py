import collections
import math
from dataclasses import dataclass

from llm_gateway.upstream.balance import Ring, RoundRobin, key_hash, least_outstanding


@dataclass(eq=False)
class Replica:
    name: str
    weight: float = 1.0
    in_flight: int = 0


def test_least_outstanding_takes_the_idlest_and_breaks_ties_at_random():
    a, b, c = Replica("a", in_flight=3), Replica("b", in_flight=1), Replica("c", in_flight=1)
    picks = collections.Counter(least_outstanding([a, b, c]).name for _ in range(400))
    assert set(picks) == {"b", "c"} and min(picks.values()) > 100
    heavy = Replica("heavy", weight=4, in_flight=3)  # 0.75 per unit of weight
    assert least_outstanding([heavy, b]) is heavy


def test_round_robin_takes_each_in_turn():
    turn, replicas = RoundRobin(), [Replica("a"), Replica("b"), Replica("c")]
    assert [turn(replicas).name for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_the_ring_spreads_keys_by_weight_and_moves_few_when_a_replica_goes():
    replicas = [Replica("a"), Replica("b"), Replica("c", weight=2)]
    ring = Ring(replicas)
    keys = [key_hash(f"conversation-{i}".encode()) for i in range(4000)]
    owner = {k: ring.pick(k, replicas, factor=1e9).name for k in keys}
    shares = collections.Counter(owner.values())
    assert 0.2 < shares["a"] / 4000 < 0.3 and 0.45 < shares["c"] / 4000 < 0.55
    without_b = [r for r in replicas if r.name != "b"]
    moved = sum(
        1 for k in keys if owner[k] != "b" and ring.pick(k, without_b, 1e9).name != owner[k]
    )
    assert moved == 0  # only b's keys move


def test_bounded_loads_pass_a_busy_replica_on():
    replicas = [Replica("a"), Replica("b")]
    ring = Ring(replicas)
    key = key_hash(b"the same long system prompt")
    home = ring.pick(key, replicas, 1.25)
    other = next(r for r in replicas if r is not home)
    for _ in range(20):  # every request has the same key; each stays in flight
        picked = ring.pick(key, replicas, 1.25)
        picked.in_flight += 1
        total = home.in_flight + other.in_flight
        assert picked.in_flight <= math.ceil(1.25 * total / 2)
    assert home.in_flight >= other.in_flight > 0
    assert home.in_flight <= math.ceil(1.25 * 20 / 2)


def test_at_low_concurrency_different_keys_still_spread():
    replicas = [Replica("a"), Replica("b")]
    ring = Ring(replicas)
    picks = {ring.pick(key_hash(f"chat-{i}".encode()), replicas, 1.25).name for i in range(16)}
    assert picks == {"a", "b"}
