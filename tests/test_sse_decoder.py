"""The SSE decoder against the WHATWG rules, at every split point of every stream."""

import pytest

from llm_gateway.sse import ServerSentEvent, SSEDecoder, encode_event

E = ServerSentEvent

STREAMS = {
    "lf": (b"data: a\n\ndata: b\n\n", [E(data="a"), E(data="b")]),
    "crlf": (b"data: a\r\n\r\ndata: b\r\n\r\n", [E(data="a"), E(data="b")]),
    "cr": (b"data: a\r\rdata: b\r\r", [E(data="a"), E(data="b")]),
    "mixed": (b"data: a\r\n\ndata: b\n\r\ndata: c\r\r", [E(data="a"), E(data="b"), E(data="c")]),
    "bom": (b"\xef\xbb\xbfdata: x\n\n", [E(data="x")]),
    "only-one-bom": (b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", []),
    "bom-prefix-only": (b"\xefdata: x\n\ndata: y\n\n", [E(data="y")]),
    "multiline": (b"data: one\ndata: two\ndata\n\n", [E(data="one\ntwo\n")]),
    "comments": (b": keep-alive\n\n:x\ndata: y\n\n", [E(data="y")]),
    "one-space-only": (b"data:  two spaces\ndata:none\n\n", [E(data=" two spaces\nnone")]),
    "event-id-retry": (
        b"event: delta\nid: 7\nretry: 1500\ndata: p\n\ndata: q\n\n",
        [E("delta", "p", "7", 1500), E("message", "q", "7", None)],
    ),
    "empty-event-name": (b"event:\ndata: z\n\n", [E(data="z")]),
    "bad-retry": (b"retry: 12a\ndata: r\n\nretry: \ndata: s\n\n", [E(data="r"), E(data="s")]),
    "id-with-nul": (
        b"id: ok\ndata: a\n\nid: b\x00ad\ndata: b\n\n",
        [E(data="a", id="ok"), E(data="b", id="ok")],
    ),
    "id-reset": (b"id: 1\ndata: a\n\nid\ndata: b\n\n", [E(data="a", id="1"), E(data="b", id="")]),
    "no-data-no-event": (b"event: x\nid: 3\n\ndata: after\n\n", [E(data="after", id="3")]),
    "unterminated": (b"data: done\n\ndata: partial", [E(data="done")]),
    "utf8": ("data: wörld 🙂 ünïcode\n\n".encode(), [E(data="wörld 🙂 ünïcode")]),
    "invalid-utf8": (b"data: a\xffb\n\n", [E(data="a\ufffdb")]),
    "u2028-is-not-a-line-break": ("data: a\u2028b\n\n".encode(), [E(data="a\u2028b")]),
    "field-without-colon": (b"data\n\n", [E(data="")]),
    "unknown-field": (b"foo: bar\ndata: d\n\n", [E(data="d")]),
    "done": (b'data: {"x":1}\n\ndata: [DONE]\n\n', [E(data='{"x":1}'), E(data="[DONE]")]),
}


def decode_all(chunks):
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.decode_chunk(chunk)]


@pytest.mark.parametrize("name", list(STREAMS))
def test_whole(name):
    raw, expected = STREAMS[name]
    assert decode_all([raw]) == expected


@pytest.mark.parametrize("name", list(STREAMS))
def test_every_split_point(name):
    raw, expected = STREAMS[name]
    for i in range(len(raw) + 1):
        assert decode_all([raw[:i], raw[i:]]) == expected, f"split at {i}"
    for i in range(len(raw)):
        for j in range(i, len(raw) + 1):
            assert decode_all([raw[:i], raw[i:j], raw[j:]]) == expected, f"split at {i}, {j}"


@pytest.mark.parametrize("name", list(STREAMS))
def test_one_byte_at_a_time(name):
    raw, expected = STREAMS[name]
    assert decode_all([raw[i : i + 1] for i in range(len(raw))]) == expected


def test_crlf_split_across_chunks_is_one_line_end():
    decoder = SSEDecoder()
    assert decoder.decode_chunk(b"data: a\r") == []
    assert decoder.decode_chunk(b"\n") == []  # the LF of the CRLF: no blank line yet
    assert decoder.decode_chunk(b"\r\n") == [E(data="a")]


def test_json():
    assert E(data='{"a": [1]}').json() == {"a": [1]}


def test_encode_event_round_trips():
    raw = encode_event("line1\nline2", event="error")
    assert decode_all([raw]) == [E("error", "line1\nline2")]


FAST_PATH_CHUNKS = [
    b"data: a\n\n",
    b"data: a\n\ndata: b\n\ndata: [DONE]\n\n",
    b"data: \n\n",
    b"data: a\n\n\n\ndata: b\n\n",  # an extra blank line
    b"data: a\ndata: b\n\n",  # one event of two lines
    b"data: a\n\ndata: b\nid: 3\n\n",
    b"data: a\n\n: keep-alive\n\n",
    b"data: a\n\nevent: x\ndata: b\n\n",
    b"data:a\n\n",  # no space: the general rules give the same data
    b"data: a\r\n\r\n",
    b"data: a\r\n\r\ndata: b\n\n",
    b"data: a\n\ndata: b\r\n\r\n",
    b"data: a\r\r\n\r\n",
    b"data: a\r\n\r\n\r\n",
    b"\xef\xbb\xbfdata: a\n\n",
    b"data: a\n\ndata: b",  # unterminated
    b"data: a\n\ndata: b\n",
    b"\n\n",
]


@pytest.mark.parametrize("chunk", FAST_PATH_CHUNKS)
def test_fast_path_gives_the_general_rules_data_or_declines(chunk):
    payloads = SSEDecoder()._whole_data_payloads(chunk)
    general = [e.data.encode() for e in SSEDecoder()._decode_general(chunk)]
    assert payloads is None or payloads == general


def test_fast_path_takes_the_chunks_engines_send():
    decoder = SSEDecoder()
    assert decoder._whole_data_payloads(b"data: a\n\ndata: {}\n\n") == [b"a", b"{}"]
    assert decoder._whole_data_payloads(b"data: [DONE]\n\n") == [b"[DONE]"]
    assert decoder._whole_data_payloads(b"data: a\r\n\r\ndata: {}\r\n\r\n") == [b"a", b"{}"]


def test_fast_path_declines_while_state_is_carried_over():
    decoder = SSEDecoder()
    assert decoder.decode_chunk(b"data: a") == []  # a line is pending
    assert decoder._whole_data_payloads(b"data: b\n\n") is None
    assert decoder.decode_chunk(b"\n\n") == [E(data="a")]
    assert decoder._whole_data_payloads(b"data: b\n\n") == [b"b"]
    decoder.decode_chunk(b"id: 9\ndata: c\n")  # an event is pending
    assert decoder._whole_data_payloads(b"data: d\n\n") is None


class GeneralOnly(SSEDecoder):
    """The WHATWG rules alone, without the fast path."""

    __slots__ = ()

    def _whole_data_payloads(self, chunk):
        return None


PIECES = [
    *[b"data: x\n\n", b"data: {}\n\n", b"data: [DONE]\n\n", b"data: y\r\n\r\n"] * 4,
    *[b"data: ", b"data:", b"data", b"\n", b"\n\n", b"\r", b"\r\n", b"x", b"\xff", b" "],
    *[b"\xef", b"\xef\xbb", b"\xef\xbb\xbf", b"id: 1\n", b"event: e\n", b":c\n", b"retry: 5\n"],
]


def test_fast_path_matches_the_general_rules_on_random_streams():
    import random

    rng = random.Random(20261125)
    for _ in range(5000):
        chunks = [
            b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 3)))
            for _ in range(rng.randint(1, 5))
        ]
        if rng.random() < 0.5:  # and cut somewhere else
            raw = b"".join(chunks)
            cut = rng.randint(0, len(raw))
            chunks = [raw[:cut], raw[cut:]]
        fast, general = SSEDecoder(), GeneralOnly()
        # Bytes the fast path cuts out raw, the general rules decode (bad bytes: U+FFFD).
        got = [p.decode("utf-8", "replace") for c in chunks for p in fast.data_payloads(c)]
        want = [p.decode("utf-8", "replace") for c in chunks for p in general.data_payloads(c)]
        assert got == want, chunks


def test_data_payloads_as_bytes_and_an_empty_chunk_keeps_a_split_crlf():
    decoder = SSEDecoder()
    assert decoder.data_payloads(b"data: x\n\ndata: y\n\n") == [b"x", b"y"]  # fast path
    assert decoder.data_payloads(b"data: a\r") == []
    assert decoder.data_payloads(b"") == []  # the CR's LF may still come
    assert decoder.data_payloads(b"\ndata: b\n\n") == [b"a\nb"]


def test_the_package_exports_the_decoder_the_relay_issue_named():
    """``from llm_gateway.sse import SSEDecoder`` is a fixed interface (issue 23, item 6)."""
    import llm_gateway.sse
    from llm_gateway.sse import decoder

    assert llm_gateway.sse.SSEDecoder is decoder.SSEDecoder
    assert "SSEDecoder" in llm_gateway.sse.__all__
