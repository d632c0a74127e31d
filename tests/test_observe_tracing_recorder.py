"""Spans recorded as ReadableSpan values go through the provider's own processors, sampled
as its sampler says; a provider without what the recorder relies on refuses at start-up."""

from __future__ import annotations

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from llm_gateway.observe.tracing import names
from llm_gateway.observe.tracing.recorder import Recorder


def provider_with(memory: InMemorySpanExporter, **kwargs) -> TracerProvider:
    provider = TracerProvider(**kwargs)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider


def test_a_server_span_and_its_child_reach_the_providers_processors():
    memory = InMemorySpanExporter()
    recorder = Recorder(provider_with(memory), "1.2.3")
    client = SpanContext(0xABC, 0x1, True, TraceFlags(1))
    server = recorder.trace_of(client, Context(), "/chat/completions")
    child = recorder.child_of(server)
    assert server.trace_id == child.trace_id == 0xABC and server.trace_flags.sampled
    recorder.record("chat m", child, server, SpanKind.CLIENT, {"a": 1}, 10, 20, failed=True)
    recorder.record("POST /x", server, client, SpanKind.SERVER, {}, 5, 30, failed=False)
    first, second = memory.get_finished_spans()
    assert (first.name, first.parent, first.start_time, first.end_time) == (
        "chat m",
        server,
        10,
        20,
    )
    assert first.status.status_code.name == "ERROR" and second.status.status_code.name == "UNSET"
    assert second.parent == client and second.kind == SpanKind.SERVER
    assert first.instrumentation_scope.name == names.SCOPE
    assert first.instrumentation_scope.schema_url == names.SCHEMA_URL


def test_the_providers_sampler_decides():
    memory = InMemorySpanExporter()
    recorder = Recorder(provider_with(memory, sampler=ALWAYS_OFF))
    server = recorder.trace_of(None, Context(), "/chat/completions")
    assert not server.trace_flags.sampled
    recorder.record("POST /x", server, None, SpanKind.SERVER, {}, 1, 2, failed=False)
    assert memory.get_finished_spans() == ()


def test_a_provider_without_its_span_processor_refuses_to_start():
    provider = TracerProvider(shutdown_on_exit=False)
    del provider._active_span_processor
    with pytest.raises(RuntimeError, match="_active_span_processor"):
        Recorder(provider)
