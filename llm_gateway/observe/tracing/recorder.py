"""Spans recorded as the SDK's ``ReadableSpan`` values, built once when the request ends and
handed to the tracer provider's span processors (its batching processor exports them).

Why not the SDK's ``Tracer.start_span``: its ``Span`` takes a lock and validates on every
attribute set; two spans of about fifteen attributes cost 45 us of CPU a request, measured
(bench/feature_cost.py --feature tracing, docs/performance.md). A span whose attributes are
all known at its end needs none of that: ids, sampling (the provider's own sampler) and
propagation are still the SDK's. Processors' ``on_start`` is not called (no span is open
while the gateway works), only ``on_end``.

It relies on ``TracerProvider._active_span_processor`` (checked when built: a version
without it refuses to start), as tested with ``opentelemetry-sdk`` 1.45."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .names import SCHEMA_URL, SCOPE

UNSET, ERROR = Status(StatusCode.UNSET), Status(StatusCode.ERROR)


class Recorder:
    __slots__ = ("resource", "scope", "sampler", "ids", "processor")

    def __init__(self, provider: TracerProvider, scope_version: str = "") -> None:
        processor = getattr(provider, "_active_span_processor", None)
        if not callable(getattr(processor, "on_end", None)):
            raise RuntimeError(
                "llm_gateway's spans rely on TracerProvider._active_span_processor.on_end "
                f"(opentelemetry-sdk 1.45); version {version('opentelemetry-sdk')} has it not. "
                "Install the tested version (requirements.txt) or set LLM_GATEWAY_OTEL=off."
            )
        self.processor: Any = processor
        self.resource = provider.resource
        self.scope = InstrumentationScope(SCOPE, scope_version, SCHEMA_URL)
        self.sampler = provider.sampler
        self.ids = provider.id_generator

    def trace_of(self, parent: SpanContext | None, context: Context, name: str) -> SpanContext:
        """The context of a new span under ``parent`` (a new trace without one), sampled or
        not as the provider's sampler says."""
        trace_id = parent.trace_id if parent is not None else self.ids.generate_trace_id()
        result = self.sampler.should_sample(context, trace_id, name, SpanKind.SERVER)
        flags = TraceFlags(TraceFlags.SAMPLED if result.decision.is_sampled() else 0)
        return SpanContext(trace_id, self.ids.generate_span_id(), False, flags, result.trace_state)

    def child_of(self, parent: SpanContext) -> SpanContext:
        span_id = self.ids.generate_span_id()
        return SpanContext(parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state)

    def record(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        start: int,
        end: int,
        failed: bool,
    ) -> None:
        if not context.trace_flags.sampled:
            return
        span = ReadableSpan(
            name,
            context,
            parent,
            self.resource,
            attributes,
            kind=kind,
            status=ERROR if failed else UNSET,
            start_time=start,
            end_time=end,
            instrumentation_scope=self.scope,
        )
        self.processor.on_end(span)
