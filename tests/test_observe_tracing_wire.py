"""Our OTLP encoder writes the message the SDK's encoder writes, field for field (both
decoded with opentelemetry-proto and compared)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from llm_gateway.observe.tracing import wire

RESOURCE = Resource({"service.name": "gw", "host.name": "h1"}, "https://opentelemetry.io/s/1")
OTHER = Resource({"service.name": "other"})
SCOPE = InstrumentationScope("llm_gateway", "0.1.0", "https://opentelemetry.io/schemas/1.41.0")
ANOTHER = InstrumentationScope("django", None, None, {"a": 1})

values = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=5), max_size=3),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.binary(max_size=5),
)
attributes = st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=8)


def span(
    attrs: dict,
    *,
    parent: SpanContext | None = None,
    status: Status | None = None,
    kind: SpanKind = SpanKind.CLIENT,
    resource: Resource = RESOURCE,
    scope: InstrumentationScope = SCOPE,
    state: TraceState | None = None,
) -> ReadableSpan:
    context = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0x00F067AA0BA902B7,
        False,
        TraceFlags(TraceFlags.SAMPLED),
        state,
    )
    return ReadableSpan(
        "chat m",
        context,
        parent,
        resource,
        attrs,
        kind=kind,
        status=status or Status(StatusCode.UNSET),
        start_time=1_700_000_000_000_000_001,
        end_time=1_700_000_000_500_000_000,
        instrumentation_scope=scope,
    )


def decoded(data: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(data)
    return message


def same(spans: list[ReadableSpan], encoder: wire.Encoder | None = None) -> None:
    ours = decoded((encoder or wire.Encoder()).encode(spans))
    theirs = decoded(encode_spans(spans).SerializeToString())
    assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(attributes)
def test_any_attributes(attrs):
    same([span(attrs)])


def test_parents_statuses_kinds_resources_and_scopes():
    remote = SpanContext(1, 2, True, TraceFlags(1))
    local = SpanContext(1, 3, False, TraceFlags(1))
    same(
        [
            span({"a": "b"}, parent=remote, kind=SpanKind.SERVER),
            span({}, parent=local, status=Status(StatusCode.ERROR, "it broke")),
            span({"x": [1.5, 2.5]}, status=Status(StatusCode.OK), kind=SpanKind.INTERNAL),
            span({"k": True}, resource=OTHER, scope=ANOTHER),
            span({"k": 1}, state=TraceState([("vendor", "value")])),
        ]
    )


def test_the_memo_of_repeating_pairs_empties_when_full():
    encoder = wire.Encoder(max_memo=3)
    batch = [
        span({"id": f"r-{i}", "n": i, "on": i % 2 == 0, "one": 1, "yes": True}) for i in range(9)
    ]
    same(batch, encoder)
    same(batch, encoder)  # again, from the memo
    assert len(encoder._pairs) <= 3 and len(encoder._keys) <= 3


def test_what_it_does_not_write_goes_to_the_sdks_encoder():
    with_event = ReadableSpan(
        "x",
        SpanContext(1, 2, False, TraceFlags(1)),
        events=[Event("e", {"a": 1}, 5)],
        resource=RESOURCE,
    )
    with pytest.raises(wire.Unwritable):
        wire.Encoder().encode([with_event])
    with pytest.raises(wire.Unwritable):
        wire.Encoder().encode([span({"odd": object()})])
