"""The struct fast path and the lenient path read what a dict reading written apart reads."""

import json

import orjson
import pytest

from llm_gateway.sse import chunks as chunk_fields
from llm_gateway.sse.chunks import chunk_text, decode_chunks


def reference_text(data):
    """A chunk's text read from a dict, written apart from llm_gateway.sse.chunks."""
    if not isinstance(data, dict):
        return ""
    if data.get("type") == "response.output_text.delta":
        return data["delta"] if isinstance(data.get("delta"), str) else ""
    parts = []
    for choice in data.get("choices") if isinstance(data.get("choices"), list) else []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(choice, dict) and isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    return "".join(parts)


def reference(payload: bytes):
    """model, content, first choice's finish reason, usage, as read from a dict."""
    try:
        data = orjson.loads(payload.decode("utf-8", "replace"))
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    choices = data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    reason = first.get("finish_reason") if isinstance(first, dict) else None
    model, usage = data.get("model"), data.get("usage")
    return (
        model if isinstance(model, str) else None,
        reference_text(data),
        str(reason) if reason else None,
        usage if isinstance(usage, dict) and usage else None,
    )


def fields(chunk):
    first = chunk.choices[0] if chunk.choices else None
    return (chunk.model, chunk_text(chunk), first and first.finish_reason, chunk.usage or None)


def choice(**fields):
    return {"index": 0, "logprobs": None, "finish_reason": None, **fields}


PAYLOADS = {
    "chat": {"id": "c", "model": "m", "choices": [choice(delta={"content": "Hi"})]},
    "role-only": {"model": "m", "choices": [choice(delta={"role": "assistant"})]},
    "finish": {"model": "m", "choices": [choice(delta={}, finish_reason="stop")]},
    "completion": {"model": "m", "choices": [choice(text="tok")]},
    "two-choices": {
        "choices": [choice(delta={"content": "a"}), dict(choice(delta={"content": "b"}), index=1)]
    },
    "usage": {"model": "m", "choices": [], "usage": {"prompt_tokens": 3, "total_tokens": 5}},
    "null-usage": {"model": "m", "choices": [choice(delta={"content": "x"})], "usage": None},
    "logprobs-with-content": {
        "choices": [
            choice(delta={"content": "y"}, logprobs={"content": [{"token": "y", "logprob": -1}]})
        ]
    },
    "delta-and-text": {"choices": [choice(delta={}, text="t")]},
    "null-delta": {"choices": [choice(delta=None, text="t")]},
    "tool-call": {"choices": [choice(delta={"tool_calls": [{"index": 0, "id": "x"}]})]},
    "reasoning": {"choices": [choice(delta={"reasoning_content": "think", "content": None})]},
    "responses-text": {"type": "response.output_text.delta", "delta": "word"},
    "responses-other": {"type": "response.created", "response": {"id": "r"}},
}
ODD_PAYLOADS = {  # shapes the structs do not fit: the general path reads them
    "content-not-a-string": {"choices": [choice(delta={"content": ["a"]})]},
    "finish-reason-number": {"choices": [choice(delta={"content": "z"}, finish_reason=3)]},
    "model-number": {"model": 7, "choices": [choice(delta={"content": "z"})]},
    "choice-not-an-object": {"choices": ["x", choice(delta={"content": "z"})]},
    "choices-not-a-list": {"model": "m", "choices": {"0": 1}},
    "usage-not-an-object": {"choices": [], "usage": 5},
}
RAW = {
    "invalid-utf8": b'{"model":"m","choices":[{"delta":{"content":"a\xffb"}}]}',
    "not-json": b"not json",
    "array": b"[1, 2]",
    "number": b"42",
    "empty": b"",
}
CASES = {name: json.dumps(p).encode() for name, p in (PAYLOADS | ODD_PAYLOADS).items()} | RAW


@pytest.mark.parametrize("name", list(CASES))
def test_one_payload_reads_as_the_dict_reading(name):
    payload = CASES[name]
    expected = reference(payload)
    chunks = decode_chunks([payload])
    assert [fields(c) for c in chunks] == ([] if expected is None else [expected])


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_common_shapes_take_the_struct_path(name, monkeypatch):
    def general(payload):
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(chunk_fields, "_read_general", general)
    assert len(decode_chunks([CASES[name]] * 3)) == 3


def test_a_batch_with_odd_payloads_keeps_every_chunk_in_order():
    payloads = list(CASES.values())
    expected = [r for r in map(reference, payloads) if r is not None]
    assert [fields(c) for c in decode_chunks(payloads)] == expected
    assert decode_chunks([]) == []
