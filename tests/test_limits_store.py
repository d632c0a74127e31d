"""The limits' decisions, the same for process memory and for Redis (when REDIS_URL is set:
.ci/run's second pass). Time-dependent rules are checked on the memory store's clock."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from llm_gateway.limits.redis_store import RedisStore
from llm_gateway.limits.spec import Limits, Scope
from llm_gateway.limits.store import Check, MemoryStore

SCOPE = Scope("key", "0badcafe", "test", Limits(rpm=1), "k0badcafe")
Run = Callable[[Callable[[object], Awaitable[None]]], None]


def check(kind: str, limit: int, amount: int = 1, name: str = "", period_end: float = 0.0):
    counter = f"test-{uuid.uuid4().hex}:{{k0badcafe}}:{name or kind}"
    return Check(kind, SCOPE, counter, limit, amount, period_end)


@pytest.fixture(params=["memory", "redis"])
def run(request: pytest.FixtureRequest) -> Run:
    """Runs a scenario against a fresh store on a fresh loop."""
    if request.param == "redis" and not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set: the Redis store runs in .ci/run's second pass")

    def runner(scenario: Callable[[object], Awaitable[None]]) -> None:
        async def main() -> None:
            store = (
                MemoryStore()
                if request.param == "memory"
                else RedisStore(os.environ["REDIS_URL"], 1.0)
            )
            try:
                await scenario(store)
            finally:
                await store.aclose()

        asyncio.run(main())

    return runner


async def settle_now(store, checks, decision, lease, actual, cost=0):
    store.settle(checks, decision, lease, actual, cost)
    if isinstance(store, RedisStore):
        await asyncio.wait([*store._tasks, *store._pending])  # the background write


def test_a_window_admits_exactly_its_limit(run: Run) -> None:
    async def scenario(store):
        checks = [check("requests", 3)]
        decisions = [await store.admit(checks, "", 30) for _ in range(5)]
        assert [d.refused for d in decisions] == [None, None, None, 0, 0]
        assert [d.used[0] for d in decisions] == [0, 1, 2, 3, 3]
        assert 59 < decisions[3].retry_after <= 60
        assert not decisions[3].too_large

    run(scenario)


def test_a_refusal_reserves_nothing_anywhere(run: Run) -> None:
    async def scenario(store):
        requests = check("requests", 5)
        first = await store.admit([requests, check("tokens", 100, 60, "t")], "", 30)
        tokens = Check("tokens", SCOPE, check("tokens", 0).counter, 100, 60)
        assert first.refused is None
        await store.admit([tokens], "", 30)
        refused = await store.admit([requests, tokens], "", 30)
        assert refused.refused == 1 and refused.used == [1, 60]
        admitted = await store.admit([requests, dataclasses.replace(tokens, amount=40)], "", 30)
        assert admitted.refused is None and admitted.used == [1, 60]  # the refusal left no count

    run(scenario)


def test_a_request_larger_than_the_limit_never_fits(run: Run) -> None:
    async def scenario(store):
        decision = await store.admit([check("tokens", 100, 101)], "", 30)
        assert decision.refused == 0 and decision.too_large

    run(scenario)


def test_settling_gives_back_what_was_not_used(run: Run) -> None:
    async def scenario(store):
        tokens = check("tokens", 100, 60)
        decision = await store.admit([tokens], "", 30)
        assert (await store.admit([tokens], "", 30)).refused == 0  # 60 + 60 > 100
        await settle_now(store, [tokens], decision, "", 10)
        assert (await store.admit([tokens], "", 30)).refused is None  # 10 + 60
        assert (await store.admit([check("tokens", 100, 0)], "", 30)).used == [0]

    run(scenario)


def test_usage_beyond_the_reservation_is_charged(run: Run) -> None:
    async def scenario(store):
        tokens = check("tokens", 100, 10)
        decision = await store.admit([tokens], "", 30)
        await settle_now(store, [tokens], decision, "", 95)
        assert (await store.admit([tokens], "", 30)).used == [95]

    run(scenario)


def test_parallel_slots_are_held_until_settled(run: Run) -> None:
    async def scenario(store):
        slots = check("parallel", 2)
        a = await store.admit([slots], "a", 30)
        b = await store.admit([slots], "b", 30)
        assert a.refused is None and b.refused is None
        assert (await store.admit([slots], "c", 30)).refused == 0
        await settle_now(store, [slots], a, "a", 0)
        assert (await store.admit([slots], "c", 30)).refused is None

    run(scenario)


def test_a_lease_not_renewed_expires_and_a_renewed_one_stays(run: Run) -> None:
    async def scenario(store):
        dead, alive = check("parallel", 1, name="dead"), check("parallel", 1, name="alive")
        await store.admit([dead], "gone", 0.3)
        await store.admit([alive], "here", 0.3)
        await asyncio.sleep(0.2)
        store.renew({alive.counter: ["here"]}, 0.3)
        await asyncio.sleep(0.05 if isinstance(store, MemoryStore) else 0.1)
        await asyncio.sleep(0.1)
        assert (await store.admit([dead], "next", 0.3)).refused is None  # freed by expiry
        assert (await store.admit([alive], "next", 0.3)).refused == 0  # still held

    run(scenario)


def test_a_budget_refuses_what_does_not_fit_until_settled(run: Run) -> None:
    async def scenario(store):
        end = time.time() + 3600
        budget = check("budget", 100, 60, period_end=end)
        first = await store.admit([budget], "", 30)
        second = await store.admit([dataclasses.replace(budget, amount=50)], "", 30)
        assert first.refused is None and second.refused == 0
        assert 3590 < second.resets[0] <= 3600 and 3590 < second.retry_after <= 3600
        await settle_now(store, [budget], first, "", 20)
        assert (await store.admit([dataclasses.replace(budget, amount=50)], "", 30)).used == [20]

    run(scenario)


def test_the_window_slides_second_by_second() -> None:
    store, checks = MemoryStore(), [check("requests", 3)]
    for at in (1000.0, 1000.5, 1030.2):
        assert store.decide(checks, "", 30, at).refused is None
    refused = store.decide(checks, "", 30, 1059.5)
    assert refused.refused == 0 and refused.retry_after == pytest.approx(0.5)
    assert refused.resets[0] == pytest.approx(0.5)
    assert store.decide(checks, "", 30, 1060.0).refused is None  # the two of second 1000 left
    assert store.decide(checks, "", 30, 1060.1).refused is None
    assert store.decide(checks, "", 30, 1060.2).refused == 0  # 1030, 1060 and 1060


def test_a_money_budget_reserves_the_worst_case_and_settles_to_the_cost(run: Run) -> None:
    """Micro-units: a budget of 1.00 and requests that may cost 0.30 each, costing 0.10."""

    async def scenario(store):
        end = time.time() + 3600
        budget = check("cost", 1_000_000, 300_000, period_end=end)
        tokens = check("budget", 10**9, 50, name="tokens", period_end=end)
        admitted = []
        while (decision := await store.admit([budget, tokens], "", 30)).refused is None:
            admitted.append(decision)
        assert len(admitted) == 3  # 0.90 reserved: a fourth's 0.30 would pass 1.00
        assert decision.used[0] == 900_000 and not decision.too_large
        for decision in admitted:  # each cost 0.10 and used 20 tokens
            await settle_now(store, [budget, tokens], decision, "", 20, 100_000)
        after = await store.admit([budget, tokens], "", 30)
        assert after.refused is None and after.used == [300_000, 60]

    run(scenario)
