"""The SSE decoder against the reference model of the WHATWG rules (tests/sse_reference.py),
on random streams and random chunkings: the same events, for every chunking, and no
exception. bench/fuzz_sse.py runs the same properties for 100,000 cases."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_gateway.core.usage import StreamMeter, whole_body_usage, withhold_usage_events
from llm_gateway.sse.boundary import EventBoundary
from llm_gateway.sse.decoder import SSEDecoder

from .sse_reference import chunkings, event_streams, reference_events

SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decoded(chunks: list[bytes]) -> list[tuple[str, str, str, int | None]]:
    decoder = SSEDecoder()
    return [
        (e.event, e.data, e.id, e.retry) for chunk in chunks for e in decoder.decode_chunk(chunk)
    ]


def payloads(chunks: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    return [p for chunk in chunks for p in decoder.data_payloads(chunk)]


def check_decoder(data: st.DataObject) -> None:
    """The reference's events, whole and in any chunking, by both entry points."""
    stream = data.draw(event_streams())
    expected = reference_events(stream)
    assert decoded([stream]) == expected
    chunks = data.draw(chunkings(stream))
    assert decoded(chunks) == expected
    assert payloads(chunks) == [event[1].encode() for event in expected]


def check_bytes(stream: bytes, cuts: list[int]) -> None:
    points = sorted(min(c, len(stream)) for c in cuts)
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert decoded(chunks) == reference_events(stream)


def check_boundary(data: st.DataObject) -> None:
    stream = data.draw(event_streams())
    boundary = EventBoundary()
    sent = [boundary.feed(chunk) for chunk in data.draw(chunkings(stream))]
    assert b"".join(sent) + boundary.flush() == stream  # byte for byte
    whole = reference_events(b"".join(sent))
    assert whole == reference_events(stream)[: len(whole)]  # never half an event


BYTES = (st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8))


@SETTINGS
@given(st.data())
def test_the_decoder_matches_the_reference_for_every_chunking(data):
    check_decoder(data)


@SETTINGS
@given(*BYTES)
def test_arbitrary_bytes_never_raise(stream, cuts):
    check_bytes(stream, cuts)


@SETTINGS
@given(st.data())
def test_the_boundary_relays_exactly_what_came_and_only_whole_events(data):
    check_boundary(data)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
CHUNK_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "choices": JSONISH
        | st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "delta": JSONISH,
                    "text": JSONISH,
                    "finish_reason": JSONISH,
                    "index": JSONISH,
                },
            )
        ),
        "usage": JSONISH
        | st.fixed_dictionaries(
            {},
            optional={
                "prompt_tokens": JSONISH,
                "completion_tokens": JSONISH,
                "prompt_tokens_details": JSONISH,
            },
        ),
        "id": JSONISH,
        "object": JSONISH,
    },
)


@SETTINGS
@given(st.lists(CHUNK_FIELDS | JSONISH, max_size=6), st.booleans())
def test_hostile_chunk_payloads_never_raise_and_count_only_text(payloads, done):
    import json

    events = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)
    if done:
        events += b"data: [DONE]\n\n"
    meter = StreamMeter()
    meter.feed(events)
    usage = meter.result(prompt_chars=12)
    for count in (usage.prompt, usage.completion, usage.cached):
        assert count is None or (isinstance(count, int) and count >= 0)  # None: not reported
    for payload in payloads:
        whole_body_usage(json.dumps(payload).encode(), 12)
    assert withhold_usage_events(events).count(b"data: ") <= events.count(b"data: ")
