"""The few fields of streamed chunks the gateway reads, without the rest: the one place that
says what a chunk's text, finish reason and usage are.

A stream's record and log line need the model, the content, the finish reason and the usage
of each chunk. Parsing every chunk into dicts (ids, timestamps, fingerprints, logprobs and all) cost
more than relaying it. msgspec decodes into the typed structs below and skips every other
field without building it. A chunk the structs do not fit (a field of another type, invalid
UTF-8, not an object) takes the lenient path: orjson, then each field kept only where it has
the expected type, so nothing an engine sends is lost (tests/test_sse_chunks.py holds the two
paths to the same reading).

The structs are not tracked by the garbage collector (``gc=False``, about 13% less decode
time): what JSON decodes into cannot form a reference cycle, and they are never mutated.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

RESPONSES_TEXT_DELTA = "response.output_text.delta"
MESSAGES_DELTA = "content_block_delta"


class Delta(msgspec.Struct, gc=False):
    content: str | None = None


class Choice(msgspec.Struct, gc=False):
    delta: Delta | None = None
    text: str | None = None  # completions chunks
    finish_reason: str | None = None


class Chunk(msgspec.Struct, gc=False):
    id: Any = None
    object: Any = None
    created: Any = None
    model: str | None = None
    choices: list[Choice] = []
    usage: dict[str, Any] | None = None
    type: str | None = None  # Responses API events
    delta: Any = None
    response: dict[str, Any] | None = None  # response.completed carries the usage
    message: dict[str, Any] | None = None  # Anthropic's message_start carries the input usage


_decode_one = msgspec.json.Decoder(Chunk).decode
# msgspec raises UnicodeDecodeError for invalid UTF-8 in a string
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)


def decode_chunks(payloads: list[bytes]) -> list[Chunk]:
    """The chunks among these event payloads (JSON objects); anything else is left out."""
    try:
        return list(map(_decode_one, payloads))
    except _DECODE_ERRORS:  # an odd payload: the general path for those that need it
        read = (_decode_or_read(payload) for payload in payloads)
        return [chunk for chunk in read if chunk is not None]


def choice_text(choice: Choice) -> str:
    """As ``sse.extract_content`` reads a choice: the delta's content, else the text."""
    delta = choice.delta
    if delta is not None and delta.content is not None:
        return delta.content
    return choice.text or ""


def chunk_text(chunk: Chunk) -> str:
    """The output text of a chunk: all its choices, or a Responses text delta."""
    if chunk.choices:
        return "".join(map(choice_text, chunk.choices))
    delta = chunk.delta
    if chunk.type == RESPONSES_TEXT_DELTA and isinstance(delta, str):
        return delta
    if chunk.type == MESSAGES_DELTA and isinstance(delta, dict):  # Anthropic's text_delta
        text = delta.get("text")
        return text if isinstance(text, str) else ""
    return ""


def _decode_or_read(payload: bytes) -> Chunk | None:
    try:
        return _decode_one(payload)
    except _DECODE_ERRORS:
        return _read_general(payload)


def _read_general(payload: bytes) -> Chunk | None:
    """Any other JSON object: each field read where it has the type the structs expect."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:  # orjson refuses invalid UTF-8; the SSE decoder would read it as U+FFFD
            data = orjson.loads(payload.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            return None
    if not isinstance(data, dict):
        return None
    return Chunk(
        id=data.get("id"),
        object=data.get("object"),
        created=data.get("created"),
        model=_str_or_none(data.get("model")),
        choices=[_read_choice(c) for c in _list(data.get("choices")) if isinstance(c, dict)],
        usage=data["usage"] if isinstance(data.get("usage"), dict) else None,
        type=_str_or_none(data.get("type")),
        delta=data.get("delta"),
        response=data["response"] if isinstance(data.get("response"), dict) else None,
    )


def _read_choice(data: dict[str, Any]) -> Choice:
    delta = data.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return Choice(
        delta=Delta(_str_or_none(content)) if isinstance(delta, dict) else None,
        text=_str_or_none(data.get("text")),
        finish_reason=str(reason) if (reason := data.get("finish_reason")) else None,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def finish_reason(chunk: Chunk) -> str | None:
    """The first choice's finish reason, if it has one."""
    return chunk.choices[0].finish_reason if chunk.choices else None
