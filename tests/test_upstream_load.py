"""A replica's saturation from its engine's reading and this process's own requests
(``upstream.load``), on an injected clock."""

from llm_gateway.upstream.load import STALE_INTERVALS, LoadOptions, ReplicaLoad
from llm_gateway.upstream.signals import EngineLoad


class Replica:
    name, origin = "r", "http://127.0.0.1:1"
    in_flight = 0
    finished = 0

    def auth_headers(self):
        return []

    async def send(self, *args, **kwargs):  # never called: the readings are set directly
        raise AssertionError


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def watch(**options) -> tuple[ReplicaLoad, Replica, Clock]:
    replica, clock = Replica(), Clock()
    return ReplicaLoad(replica, LoadOptions(**options), clock), replica, clock


def reading(load: ReplicaLoad, waiting: float, kv: float | None = None) -> None:
    """What ``read_once`` keeps of a good reading."""
    load.engine, load.state, load.read_at = EngineLoad("vllm", waiting, 8, kv), "read", load.clock()
    load._in_flight_then, load._finished_then = load.upstream.in_flight, load.upstream.finished


def test_max_in_flight_alone_without_engine_metrics():
    load, replica, _ = watch(max_in_flight=2)
    replica.in_flight = 1
    assert not load.saturated()
    replica.in_flight = 2
    assert load.saturated()


def test_an_engine_queue_at_the_threshold_is_saturated_until_a_request_ends():
    load, replica, _ = watch(read=True, queue_threshold=1)
    replica.in_flight = 5
    reading(load, waiting=0)
    assert not load.saturated()
    reading(load, waiting=1)
    assert load.saturated()
    replica.in_flight, replica.finished = 4, 1  # one of ours ended: room for one
    assert not load.saturated()
    replica.in_flight = 5  # ... which we took
    assert load.saturated()


def test_a_longer_queue_needs_as_many_endings():
    load, replica, _ = watch(read=True, queue_threshold=2)
    replica.in_flight = 10
    reading(load, waiting=4)  # 3 over: three must end before one more goes
    for ended in (1, 2):
        replica.in_flight, replica.finished = 10 - ended, ended
        assert load.saturated()
    replica.in_flight, replica.finished = 7, 3
    assert not load.saturated()


def test_a_full_kv_cache_is_saturated():
    load, _, _ = watch(read=True, kv_threshold=0.9)
    reading(load, waiting=0, kv=0.95)
    assert load.saturated()
    reading(load, waiting=0, kv=0.5)
    assert not load.saturated()


def test_a_stale_reading_is_saturated_and_a_fresh_one_clears_it():
    load, _, clock = watch(read=True, interval=1.0)
    reading(load, waiting=0)
    clock.now += STALE_INTERVALS * 1.0 - 0.01
    assert not load.saturated()
    clock.now += 0.02
    assert load.stale() and load.saturated()
    reading(load, waiting=0)
    assert not load.saturated()


def test_an_engine_without_metrics_is_never_stale():
    load, _, clock = watch(read=True, interval=1.0)
    load.state = "none"
    clock.now += 100
    assert not load.stale() and not load.saturated()


def test_a_replica_never_read_is_not_held_for_it():
    """Its engine never answered /metrics: the watchdog judges it; the queue does not."""
    load, _, clock = watch(read=True, interval=1.0)
    load.state = "failing"
    clock.now += 100
    assert not load.saturated()


def test_nothing_is_read_with_the_scheduler_off():
    load, _, clock = watch(read=False)
    load.engine = EngineLoad("vllm", 50, 8, 1.0)
    clock.now += 100
    assert not load.saturated()
