"""The gateway queue (``core.schedule``): classes, aging, the header's cap, virtual token
counters and the idle lift, the bounds, a client leaving while it waits, the drain. Real
replicas and pool, never sent to: ``max_in_flight`` 1 makes each lease fill its replica, and
releasing it is a request ending. The clock is injected."""

import asyncio

import pytest

from llm_gateway.core.fairness import MemoryCounters
from llm_gateway.core.priority import (
    FairShare,
    Tenant,
    asked_rank,
    fair_share_of,
)
from llm_gateway.core.schedule import QueueFull, QueueTimeout, ScheduleOptions, Scheduler
from llm_gateway.errors import InvalidRequestError, ServerShuttingDown
from llm_gateway.upstream.client import Upstream
from llm_gateway.upstream.load import LoadOptions
from llm_gateway.upstream.pool import UpstreamPool

INTERACTIVE, DEFAULT, BATCH = 0, 1, 2
A, B = Tenant("owner:1"), Tenant("owner:2")


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def scheduler(**options) -> tuple[Scheduler, Clock]:
    replica = Upstream("http://127.0.0.1:9/v1", models=("m",), load=LoadOptions(max_in_flight=1))
    clock = Clock()
    return Scheduler(UpstreamPool([replica]), ScheduleOptions(**options), clock=clock), clock


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def run(coro):
    return asyncio.run(coro)


async def queue_up(sched: Scheduler, requests: list[tuple[Tenant, int, float]]):
    """Fill the replica, queue ``requests`` in order, then let them through one at a time:
    the order they were dispatched in (indexes into ``requests``)."""
    first, _ = await sched.turn("m", Tenant("owner:0"), DEFAULT)
    tasks = []
    for tenant, rank, tokens in requests:
        tasks.append(asyncio.ensure_future(sched.turn("m", tenant, rank, tokens=tokens)))
        await settle()
    order: list[int] = []
    lease = first
    while len(order) < len(tasks):
        lease.release()
        await settle()
        done = [i for i, t in enumerate(tasks) if t.done() and i not in order]
        assert len(done) == 1, done  # one slot: one dispatched
        order.append(done[0])
        lease = tasks[done[0]].result()[0]
    lease.release()
    return order


def test_a_request_with_room_goes_at_once_and_without_waiting():
    async def go():
        sched, _ = scheduler(enabled=True)
        lease, waited = await sched.turn("m", A, DEFAULT)
        assert waited == 0 and sched.depth() == 0
        lease.release()

    run(go())


def test_classes_first_then_arrival():
    async def go():
        sched, _ = scheduler(enabled=True)
        return await queue_up(sched, [(A, BATCH, 0), (A, DEFAULT, 0), (B, INTERACTIVE, 0)])

    assert run(go()) == [2, 1, 0]


def test_aging_lifts_a_waiting_request_one_class_per_period():
    async def go():
        sched, clock = scheduler(enabled=True, aging=30)
        first, _ = await sched.turn("m", A, DEFAULT)
        old = asyncio.ensure_future(sched.turn("m", A, BATCH))
        await settle()
        clock.now += 31  # batch counts as default now, and it came first
        new = asyncio.ensure_future(sched.turn("m", B, DEFAULT))
        await settle()
        first.release()
        await settle()
        assert old.done() and not new.done()
        old.result()[0].release()
        await settle()
        assert new.done()
        new.result()[0].release()

    run(go())


def test_the_tenant_with_the_smallest_counter_goes_first_within_a_class():
    """A offers 4 requests first, B 2 after: each dispatch charges 10, so they alternate
    (A wins the tie at equal counters: it came first) until B has nothing left."""

    async def go():
        sched, _ = scheduler(enabled=True, input_weight=1)
        return await queue_up(sched, [(A, DEFAULT, 10)] * 4 + [(B, DEFAULT, 10)] * 2)

    assert run(go()) == [0, 4, 1, 5, 2, 3]


def test_counters_are_charged_input_at_dispatch_and_output_at_the_end_over_the_share():
    async def go():
        sched, _ = scheduler(enabled=True, input_weight=1, output_weight=2)
        heavy = Tenant("owner:9", share=4)
        lease, _ = await sched.turn("m", heavy, DEFAULT, tokens=100)
        assert sched.counters.value(heavy.name) == pytest.approx(25)
        sched.finished(heavy, 50)
        lease.release()
        assert sched.counters.value(heavy.name) == pytest.approx(25 + 25)

    run(go())


def test_a_tenant_back_from_idle_is_lifted_to_the_smallest_backlogged_counter():
    counters = MemoryCounters()
    counters.charge("busy", 900)
    counters.charge("other", 700)
    counters.lift("idle", ["busy", "other"])
    assert counters.value("idle") == 700  # no credit banked while idle
    counters.charge("ahead", 5000)
    counters.lift("ahead", ["busy"])
    assert counters.value("ahead") == 5000  # never lowered

    async def go():
        sched, _ = scheduler(enabled=True)
        sched.counters.charge(A.name, 1000)
        first, _ = await sched.turn("m", A, DEFAULT)  # A served last, at 1000
        waiting = asyncio.ensure_future(sched.turn("m", B, DEFAULT))
        await settle()
        assert sched.counters.value(B.name) == 1000  # lifted on joining the queue
        first.release()
        await settle()
        (await waiting)[0].release()

    run(go())


def test_the_queue_is_bounded():
    async def go():
        sched, _ = scheduler(enabled=True, queue_max=2)
        first, _ = await sched.turn("m", A, DEFAULT)
        waiting = [asyncio.ensure_future(sched.turn("m", A, DEFAULT)) for _ in range(2)]
        await settle()
        with pytest.raises(QueueFull) as refused:
            await sched.turn("m", B, INTERACTIVE)
        assert refused.value.status == 503 and refused.value.code == "queue_full"
        assert (b"retry-after", b"1") in refused.value.headers()
        for task in waiting:
            task.cancel()
        await settle()
        first.release()

    run(go())


def test_a_request_that_waited_too_long_is_a_503_queue_timeout():
    async def go():
        sched, _ = scheduler(enabled=True, queue_timeout=0.05)
        first, _ = await sched.turn("m", A, DEFAULT)
        with pytest.raises(QueueTimeout) as refused:
            await sched.turn("m", B, DEFAULT)
        assert refused.value.status == 503 and refused.value.code == "queue_timeout"
        assert sched.depth() == 0
        first.release()

    run(go())


def test_a_request_whose_client_left_is_removed_and_takes_no_slot():
    async def go():
        sched, _ = scheduler(enabled=True)
        first, _ = await sched.turn("m", A, DEFAULT)
        left = asyncio.ensure_future(sched.turn("m", A, INTERACTIVE))
        stays = asyncio.ensure_future(sched.turn("m", B, BATCH))
        await settle()
        left.cancel()
        await settle()
        assert sched.depth() == 1
        first.release()
        await settle()
        lease, _ = stays.result()
        assert lease.upstream.in_flight == 1
        lease.release()

    run(go())


def test_a_client_leaving_just_as_its_turn_came_gives_the_slot_back():
    async def go():
        sched, _ = scheduler(enabled=True)
        first, _ = await sched.turn("m", A, DEFAULT)
        task = asyncio.ensure_future(sched.turn("m", B, DEFAULT))
        await settle()
        first.release()  # chosen: the lease is taken for it...
        task.cancel()  # ... and it leaves before it runs again
        await settle()
        assert task.cancelled()
        assert sched.pool.upstreams[0].in_flight == 0

    run(go())


def test_the_drain_answers_every_waiting_request_server_shutting_down():
    async def go():
        sched, _ = scheduler(enabled=True)
        first, _ = await sched.turn("m", A, DEFAULT)
        waiting = asyncio.ensure_future(sched.turn("m", B, DEFAULT))
        await settle()
        sched.close()
        with pytest.raises(ServerShuttingDown):
            await waiting
        with pytest.raises(ServerShuttingDown):
            await sched.turn("m", B, DEFAULT)  # the replica is full: it would wait
        first.release()

    run(go())


def test_the_header_asks_a_class_lowered_to_the_keys_cap():
    fair = FairShare(rank=DEFAULT, cap=DEFAULT)
    assert asked_rank(fair, None) == DEFAULT
    assert asked_rank(fair, b"batch") == BATCH
    assert asked_rank(fair, b"interactive") == DEFAULT  # above its cap: lowered, not refused
    assert asked_rank(FairShare(rank=DEFAULT, cap=INTERACTIVE), b" Interactive ") == INTERACTIVE
    with pytest.raises(InvalidRequestError) as refused:
        asked_rank(fair, b"urgent")
    assert refused.value.param == "X-Gateway-Priority"


def test_a_keys_class_and_cap_come_from_the_key_then_its_team_then_its_owner():
    fair = fair_share_of(
        {
            "key": {"priority": "", "max_priority": "", "share": None},
            "team": {"priority": "batch", "max_priority": "", "share": 3},
            "owner": {"priority": "interactive", "max_priority": "interactive", "share": 2},
        },
        {"key": 7, "owner": 1, "team": 5},
    )
    assert (fair.rank, fair.cap) == (BATCH, INTERACTIVE)
    assert fair.tenant("owner") == Tenant("owner:1", 2.0)
    assert fair.tenant("team") == Tenant("team:5", 3.0)
    assert fair.tenant("key") == Tenant("key:7", 1.0)
    lone = fair_share_of({"key": {"priority": "interactive"}}, {"key": 8})
    assert (lone.rank, lone.cap) == (INTERACTIVE, INTERACTIVE)  # the cap is never below it
    assert lone.tenant("owner") == lone.tenant("team") == Tenant("key:8")


def test_batch_leaves_the_headroom_to_the_other_classes():
    async def go():
        replica = Upstream(
            "http://127.0.0.1:9/v1", models=("m",), load=LoadOptions(max_in_flight=2)
        )
        options = ScheduleOptions(enabled=True, batch_headroom=1)
        sched = Scheduler(UpstreamPool([replica]), options, clock=Clock())
        batch, _ = await sched.turn("m", A, BATCH)
        second = asyncio.ensure_future(sched.turn("m", A, BATCH))
        await settle()
        assert not second.done()  # the last slot is the headroom
        interactive, waited = await sched.turn("m", B, INTERACTIVE)
        assert waited == 0 and replica.in_flight == 2
        interactive.release()
        await settle()
        assert not second.done()  # still the headroom
        batch.release()
        await settle()
        (await second)[0].release()

    run(go())
