"""What a span reads of an answer: id, model, finish reasons, and captured content."""

from __future__ import annotations

import json

from llm_gateway.observe.tracing.answer import AnswerReader, input_messages


def sse(*events: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + (
        b"data: [DONE]\n\n"
    )


def chunk(text: str | None, finish: str | None = None, index: int = 0) -> dict:
    delta = {"content": text} if text is not None else {}
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return {"id": "chatcmpl-1", "model": "m-1", "choices": [choice]}


def test_a_stream_read_in_pieces():
    reader = AnswerReader(stream=True, capture=True)
    reader.feed(sse(chunk("Hel")), first=True)
    reader.feed(sse(chunk("lo"), chunk(None, "length")), first=False)
    reader.ended()
    assert (reader.id, reader.model, reader.finish_reasons) == ("chatcmpl-1", "m-1", ["length"])
    (message,) = json.loads(reader.output_messages())
    assert message["parts"] == [{"type": "text", "content": "Hello"}]
    assert message["finish_reason"] == "length"


def test_without_capture_no_text_is_kept():
    reader = AnswerReader(stream=True, capture=False)
    reader.feed(sse(chunk("secret words"), chunk(None, "stop")), first=True)
    reader.ended()
    assert reader.texts == {} and reader.finish_reasons == ["stop"]


def test_a_streams_finish_reasons_are_read_once_it_ended():
    reader = AnswerReader(stream=True, capture=False)
    reader.feed(sse(chunk("a")), first=True)
    for _ in range(50):
        reader.feed(sse(chunk("more")), first=False)
    reader.feed(sse(chunk(None, "length", index=1), chunk(None, "stop")), first=False)
    assert reader.finish_reasons == []  # nothing searched while it streams
    reader.ended()
    assert reader.finish_reasons == ["length", "stop"]


def test_a_whole_answer_with_two_choices():
    body = {
        "id": "cmpl-2",
        "model": "m-2",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"},
            {
                "index": 1,
                "message": {"role": "assistant", "content": "b"},
                "finish_reason": "length",
            },
        ],
    }
    reader = AnswerReader(stream=False, capture=True)
    reader.feed(json.dumps(body).encode(), first=True)
    assert (reader.id, reader.model, reader.finish_reasons) == ("cmpl-2", "m-2", ["stop", "length"])
    assert [m["parts"][0]["content"] for m in json.loads(reader.output_messages())] == ["a", "b"]


def test_the_messages_api_stream_names_its_id_inside_message():
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "claude-ish"}}
    reader = AnswerReader(stream=True, capture=False)
    reader.feed(b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n", first=True)
    reader.feed(b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"}}\n\n', False)
    reader.ended()
    assert (reader.id, reader.model, reader.finish_reasons) == ("msg_1", "claude-ish", ["end_turn"])


def test_broken_bytes_are_ignored():
    reader = AnswerReader(stream=False, capture=True)
    reader.feed(b"<html>not json</html>", first=True)
    assert reader.id is None and reader.finish_reasons == []


def test_input_messages_in_the_conventions_shape():
    payload = {
        "messages": [
            {"role": "system", "content": "rules"},
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url"}]},
        ]
    }
    messages, system = input_messages(payload)
    assert json.loads(messages) == [
        {"role": "user", "parts": [{"type": "text", "content": "look"}, {"type": "image_url"}]}
    ]
    assert json.loads(system) == [{"type": "text", "content": "rules"}]
    assert input_messages({"prompt": "once upon"})[0] == json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "once upon"}]}],
        separators=(",", ":"),
    )
    assert input_messages(None) == (None, None)
