import json
import logging

from llm_gateway.observe import response_log
from llm_gateway.observe.response_log import MARKER, StreamTap, cut, log_body


def chunk(content, finish=None, model="m"):
    payload = {
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


def test_cut():
    assert cut("abc", 3) == "abc" and cut("abcd", 3) == "abc" + MARKER


def test_tap_joins_content_across_arbitrary_splits(caplog):
    stream = b"".join([chunk("Hé"), chunk("llo "), chunk("🙂", "stop"), b"data: [DONE]\n\n"])
    tap = StreamTap(100)
    for i in range(0, len(stream), 3):
        tap.feed(stream[i : i + 3])
    assert (
        tap.content == "Héllo 🙂" and tap.chunks == 3 and tap.finish_reason == "stop" and tap.done
    )
    with caplog.at_level(logging.INFO, "llm_gateway.responses"):
        tap.log("done")
        tap.log("done")  # once only
    (message,) = [r.getMessage() for r in caplog.records]
    assert (
        message
        == "stream end=done model=m chunks=3 finish_reason=stop usage=unknown content=Héllo 🙂"
    )


def test_tap_truncates_with_a_marker():
    tap = StreamTap(5)
    tap.feed(chunk("abc") + chunk("defg"))
    assert tap.content == "abcde" + MARKER


def test_what_a_tap_keeps_is_bounded_by_its_limit_not_by_the_stream():
    piece = chunk("token ")
    tap = StreamTap(2048)
    for _ in range(101_000):
        tap.feed(piece)
        # What it holds between reads: at most one batch of chunks, and the content kept.
        assert tap._pending_size < StreamTap.BATCH_BYTES + len(piece)
    tap.flush()
    assert tap.chunks == 101_000
    assert sum(map(len, tap._parts)) == 2048 and len(tap.content) == 2048 + len(MARKER)


def test_log_body_marks_binary(caplog):
    with caplog.at_level(logging.INFO, "llm_gateway.responses"):
        log_body(200, b"\xff\xfe", 10)
        log_body(200, b"x" * 20, 10)
    assert [r.getMessage() for r in caplog.records] == [
        "response status=200 body=<binary>",
        "response status=200 body=" + "x" * 10 + MARKER,
    ]


def test_invalid_utf8_in_an_event_is_logged_like_the_decoder_reads_it():
    """The fast path parses bytes; a bad byte must not drop the event (it becomes U+FFFD)."""
    tap = StreamTap(100)
    tap.feed(b'data: {"choices": [{"delta": {"content": "a\xffb"}}]}\n\n')
    tap.feed(b'data: {"choices": [{"delta": {"content": "c"}}]}\n\n')
    assert tap.content == "a\ufffdbc" and tap.chunks == 2


def test_chunks_are_read_in_batches_and_before_the_log_line(caplog):
    tap = StreamTap(100_000)
    tap.feed(chunk("a"))
    assert tap.chunks == 0  # kept, not read yet
    tap.flush()
    assert tap.chunks == 1
    piece = chunk("b")
    fed = 1
    while tap.chunks == 1:  # a batch is read once BATCH_BYTES have passed
        tap.feed(piece)
        fed += 1
    assert (fed - 1) * len(piece) >= StreamTap.BATCH_BYTES > (fed - 2) * len(piece)
    tap.feed(chunk("c", "stop") + b"data: [DONE]\n\n")
    with caplog.at_level(logging.INFO, "llm_gateway.responses"):
        tap.log("upstream_closed")  # [DONE] was seen: the stream ended done
    (message,) = [r.getMessage() for r in caplog.records]
    content = "a" + "b" * (fed - 1) + "c"
    assert message == (
        f"stream end=done model=m chunks={fed + 1} finish_reason=stop usage=unknown "
        f"content={content}"
    )


def test_a_batch_may_end_inside_an_event(monkeypatch):
    """The relay feeds whole events, but the tap must not depend on it."""
    monkeypatch.setattr(StreamTap, "BATCH_BYTES", 7)
    stream = b"".join(chunk(f"<{i}>") for i in range(50)) + b"data: [DONE]\n\n"
    for step in (1, 5, 13, 64):
        tap = StreamTap(10_000)
        for i in range(0, len(stream), step):
            tap.feed(stream[i : i + step])
        assert tap.content == "".join(f"<{i}>" for i in range(50)), step
        assert tap.chunks == 50 and tap.done


def test_an_ending_without_done_is_kept(caplog):
    tap = StreamTap(100)
    tap.feed(chunk("partial"))
    with caplog.at_level(logging.INFO, "llm_gateway.responses"):
        tap.log("client_disconnected")
    assert caplog.records[0].getMessage().startswith("stream end=client_disconnected ")


def test_enabled_follows_the_logger_level():
    """Above INFO nothing would be written, so the relay does not tap streams at all."""
    logger = logging.getLogger("llm_gateway.responses")
    previous = logger.level
    try:
        logger.setLevel(logging.WARNING)
        assert not response_log.enabled()
        logger.setLevel(logging.INFO)
        assert response_log.enabled()
    finally:
        logger.setLevel(previous)


def test_tap_reads_random_streams_as_the_decoder_and_a_dict_reading_do(monkeypatch):
    import random

    import orjson

    from llm_gateway.sse.decoder import SSEDecoder

    from .test_sse_chunks import reference_text

    rng = random.Random(7)
    pieces = [
        *[chunk("ab"), chunk("é🙂"), chunk("", "stop"), b"data: [DONE]\n\n"] * 3,
        b'data: {"choices": [{"text": "t"}]}\n\n',
        b'data: {"choices": [{"delta": {"content": 5}}]}\n\n',
        b"data: not json\n\n",
        b"data: [1]\n\n",
        b": keep-alive\n\n",
        b"event: x\ndata: {}\n\n",
        b'data: {"choices": [{"delta": {"content": "c\xff"}}]}\n\n',
        b"\r\n",
    ]
    for _ in range(500):
        monkeypatch.setattr(StreamTap, "BATCH_BYTES", rng.choice([1, 50, 300, 16384]))
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        tap = StreamTap(rng.choice([3, 20, 1000]))
        position = 0
        while position < len(raw):
            step = rng.randint(1, 80)
            tap.feed(raw[position : position + step])
            position += step
        content, chunks, done = "", 0, False
        for event in SSEDecoder().decode_chunk(raw):
            if event.data == "[DONE]":
                done = True
                continue
            chunks += 1
            try:
                payload = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(payload, dict):
                content += reference_text(payload)
        expected = cut(content, tap._limit)
        assert (tap.content, tap.chunks, tap.done) == (expected, chunks, done), raw
