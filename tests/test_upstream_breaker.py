"""Passive health, on a clock the test moves (no sleeping)."""

from llm_gateway.upstream import BreakerOptions
from llm_gateway.upstream.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ejection_doubles_and_one_trial_decides():
    clock = Clock()
    breaker = Breaker("a", BreakerOptions(3, 0.125, 0.5), clock)
    for _ in range(2):
        breaker.failed()
    assert breaker.state == "closed" and breaker.available()
    breaker.failed()
    assert breaker.state == "open" and not breaker.available()
    assert breaker.ejected_for() == 0.125  # (binary fractions: exact sums)
    clock.now += 0.125
    assert breaker.state == "half_open" and breaker.available()
    breaker.picked()
    assert not breaker.available()  # one trial at a time
    breaker.failed()  # the trial failed: ejected again, twice as long
    assert breaker.cooldown == 0.25 and breaker.state == "open"
    clock.now += 0.25
    breaker.picked()
    breaker.failed()
    assert breaker.cooldown == 0.5  # the maximum
    clock.now += 0.5
    breaker.picked()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.failures == 0 and breaker.cooldown == 0


def test_a_success_resets_the_count_and_retry_after_is_honoured():
    clock = Clock()
    breaker = Breaker("a", clock=clock)
    breaker.failed()
    breaker.failed()
    breaker.succeeded()
    breaker.failed()
    assert breaker.state == "closed"
    breaker.throttle(0.5)
    assert not breaker.available()
    clock.now += 0.5
    assert breaker.available()
