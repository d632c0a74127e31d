from llm_gateway.sse.boundary import EventBoundary
from llm_gateway.sse.decoder import SSEDecoder

STREAM = b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\r\n: comment\n\ndata: e\n\n"


def test_whole_events_pass_at_once():
    assert EventBoundary().feed(b"data: a\n\n") == b"data: a\n\n"


def test_partial_events_are_held_until_complete():
    boundary = EventBoundary()
    assert boundary.feed(b"data: a\n\ndata: b") == b"data: a\n\n"
    assert boundary.feed(b"c\n") == b""
    assert boundary.feed(b"\n") == b"data: bc\n\n"


def test_every_split_point_forwards_only_whole_events_and_keeps_the_bytes():
    expected = SSEDecoder().decode_chunk(STREAM)
    for i in range(len(STREAM) + 1):
        for j in range(i, len(STREAM) + 1):
            boundary = EventBoundary()
            out = [boundary.feed(p) for p in (STREAM[:i], STREAM[i:j], STREAM[j:])]
            out.append(boundary.flush())
            assert b"".join(out) == STREAM
            # Each piece sent before the end is a sequence of whole events: decoded alone, by
            # a decoder that knows nothing of the pieces before it, they give every event.
            events = [e for piece in out[:-1] for e in SSEDecoder().decode_chunk(piece)]
            assert events == expected


def test_flush_returns_an_unterminated_tail():
    boundary = EventBoundary()
    boundary.feed(b"data: x")
    assert boundary.flush() == b"data: x"
