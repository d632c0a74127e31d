"""The runtime: built from options (a test's own) or from the settings (the process's), it
owns everything stateful; a changed setting gives the next caller a new one."""

from __future__ import annotations

import asyncio

from django.apps import apps
from django.test import override_settings

from llm_gateway.core import RelayOptions
from llm_gateway.observe.metrics import GatewayMetrics
from llm_gateway.observe.request_log import RequestLogObserver
from llm_gateway.observe.response_log import ResponseLog
from llm_gateway.runtime import Runtime, RuntimeOptions, get_runtime
from llm_gateway.upstream import ReplicaSpec


def test_a_runtime_built_from_its_own_options():
    options = RuntimeOptions(
        replicas=(ReplicaSpec("http://127.0.0.1:9/v1", ("m",), "sk-up", name="one"),),
        relay=RelayOptions(usage=False, retries=0),
        request_log=False,
        metrics=False,
        log_responses=True,
    )
    runtime = Runtime(options)
    assert runtime.relay.options.usage is False and runtime.relay.options.retries == 0
    assert [u.name for u in runtime.pool.upstreams] == ["one"]
    assert runtime.request_log is None and runtime.metrics is None
    assert [type(o) for o in runtime.relay.observers] == [ResponseLog]  # off costs nothing
    assert runtime.relay.policies == [runtime.pricing, runtime.limits]  # pricing first


def test_the_observers_follow_the_options_and_start_and_stop_in_one_place():
    runtime = Runtime(RuntimeOptions(replicas=(ReplicaSpec("http://127.0.0.1:9/v1"),)))
    kinds = [type(o) for o in runtime.relay.observers]
    assert kinds == [RequestLogObserver, GatewayMetrics]

    async def main() -> None:
        runtime.start()
        (upstream,) = runtime.pool.upstreams
        assert upstream.health._loop.running()
        runtime.start()  # again on the same loop: nothing more
        await runtime.aclose()
        assert upstream.health._loop.task is None

    asyncio.run(main())


def test_a_drain_refuses_new_requests_and_tells_sessions():
    runtime = Runtime()
    told = []

    class Session:
        def close_soon(self, code: int, reason: str) -> None:
            told.append(code)

    runtime.sessions.add(Session())
    assert not runtime.draining
    runtime.begin_drain()
    assert runtime.draining and not runtime.relay.accepting and told == [1001]


def test_the_process_runtime_is_rebuilt_after_a_setting_changed():
    first = get_runtime()
    assert get_runtime() is first
    with override_settings(LLM_GATEWAY_RETRIES=5):
        second = get_runtime()
        assert second is not first and second.relay.options.retries == 5
    assert get_runtime().relay.options.retries == 2
    config = apps.get_app_config("llm_gateway")
    assert first in config._retired and second in config._retired  # closed at shutdown
