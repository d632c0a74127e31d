import time

from django.test import override_settings

from llm_gateway.upstream.breaker import Breaker


@override_settings(
    LLM_GATEWAY_EJECT_FAILURES=3, LLM_GATEWAY_EJECT_SECONDS=0.1, LLM_GATEWAY_EJECT_MAX_SECONDS=0.3
)
def test_ejection_doubles_and_one_trial_decides():
    breaker = Breaker("a")
    for _ in range(2):
        breaker.failed()
    assert breaker.state == "closed" and breaker.available(time.monotonic())
    breaker.failed()
    assert breaker.state == "open" and not breaker.available(time.monotonic())
    assert 0 < breaker.ejected_for() <= 0.1
    time.sleep(0.11)
    now = time.monotonic()
    assert breaker.state == "half_open" and breaker.available(now)
    breaker.picked(now)
    assert not breaker.available(now)  # one trial at a time
    breaker.failed()  # the trial failed: ejected again, twice as long
    assert breaker.cooldown == 0.2 and breaker.state == "open"
    time.sleep(0.21)
    breaker.picked(time.monotonic())
    breaker.failed()
    assert breaker.cooldown == 0.3  # the maximum
    time.sleep(0.31)
    breaker.picked(time.monotonic())
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.failures == 0 and breaker.cooldown == 0


def test_a_success_resets_the_count_and_retry_after_is_honoured():
    breaker = Breaker("a")
    breaker.failed()
    breaker.failed()
    breaker.succeeded()
    breaker.failed()
    assert breaker.state == "closed"
    breaker.throttle(0.05)
    assert not breaker.available(time.monotonic())
    time.sleep(0.06)
    assert breaker.available(time.monotonic())
