"""The few fields of streamed chunks that the response log needs, read without the rest.

A stream's log line needs the model, the content, the finish reason and the usage of each
chunk. Parsing every chunk into dicts (ids, timestamps, fingerprints, logprobs and all) cost
more than relaying it. msgspec decodes into the typed structs below and skips every other
field without building it. A chunk the structs do not fit (a field of another type, invalid
UTF-8, not an object) takes the general path: orjson, then ``sse.extract_content``, so
nothing an engine sends is lost from the log (tests/test_chunk_fields.py holds the two paths
to the same reading).

The structs are not tracked by the garbage collector (``gc=False``, about 13% less decode
time): what JSON decodes into cannot form a reference cycle, and they are never mutated.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from .sse import extract_content

RESPONSES_TEXT_DELTA = "response.output_text.delta"


class Delta(msgspec.Struct, gc=False):
    content: str | None = None


class Choice(msgspec.Struct, gc=False):
    delta: Delta | None = None
    text: str | None = None  # completions chunks
    finish_reason: str | None = None


class Chunk(msgspec.Struct, gc=False):
    model: str | None = None
    choices: list[Choice] = []
    usage: dict[str, Any] | None = None
    type: str | None = None  # Responses API events
    delta: Any = None


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
    return delta if chunk.type == RESPONSES_TEXT_DELTA and isinstance(delta, str) else ""


def _decode_or_read(payload: bytes) -> Chunk | None:
    try:
        return _decode_one(payload)
    except _DECODE_ERRORS:
        return _read_general(payload)


def _read_general(payload: bytes) -> Chunk | None:
    """Any other JSON object, its fields read as sse.extract_content reads them."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:  # orjson refuses invalid UTF-8; the SSE decoder would read it as U+FFFD
            data = orjson.loads(payload.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            return None
    if not isinstance(data, dict):
        return None
    model = data.get("model")
    usage = data.get("usage")
    choices = data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    reason = first.get("finish_reason") if isinstance(first, dict) else None
    choice = Choice(Delta(extract_content(data)), finish_reason=str(reason) if reason else None)
    return Chunk(  # the content already joined, as one choice
        model=model if isinstance(model, str) else None,
        choices=[choice],
        usage=usage if isinstance(usage, dict) else None,
    )
