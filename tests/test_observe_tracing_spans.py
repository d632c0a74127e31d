"""The engine's trace context headers, written by the gateway, are what the SDK's W3C
propagator writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from llm_gateway.observe.tracing.spans import context_headers

states = st.lists(
    st.tuples(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
        st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
    ),
    max_size=3,
    unique_by=lambda pair: pair[0],
)


@given(
    st.integers(min_value=1, max_value=2**128 - 1),
    st.integers(min_value=1, max_value=2**64 - 1),
    st.sampled_from([0, 1, 3]),
    states,
)
def test_the_headers_are_the_propagators(trace_id, span_id, flags, state):
    context = SpanContext(trace_id, span_id, False, TraceFlags(flags), TraceState(state))
    theirs: dict[str, str] = {}
    propagate.inject(theirs, trace.set_span_in_context(NonRecordingSpan(context)))
    assert dict(context_headers(context, w3c=True)) == theirs
    assert dict(context_headers(context, w3c=False)) == theirs
