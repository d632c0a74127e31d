"""Usage for whoever asks: the usage a client asked for and the engine did not send, added by
the gateway from its own meter (llama-cpp-python's server ignores ``include_usage``).

- A chat or completions stream whose client asked ``stream_options.include_usage`` and whose
  engine sent no usage chunk gets one before ``data: [DONE]``, shaped as OpenAI's
  (``choices: []``, ``usage`` with prompt, completion and total tokens).
- A Responses API stream's ``response.completed`` without ``usage`` gets it.
- A whole answer without ``usage`` gets it.

What an engine does send is relayed byte for byte, as before. The numbers are the record's
(``usage.Usage``), so the client, the request log and the limits agree.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..sse.boundary import DONE_EVENT, split_events
from ..sse.chunks import Chunk
from ..upstream.tokenizer import Tokenizer
from .endpoints import COMPLETIONS, EMBEDDINGS, RESPONSES
from .request import GatewayRequest
from .usage import (
    StreamMeter,
    Usage,
    answer_text,
    estimate_tokens,
    json_object,
    prompt_text,
    prompt_text_length,
)

COMPLETED = b'"response.completed"'


async def counted_usage(
    tokenizer: Tokenizer | None, request: GatewayRequest, meter: StreamMeter
) -> Usage:
    """A stream's usage from the meter: the content events it relayed, and the prompt by the
    engine's tokenizer (else estimated)."""
    prompt = await prompt_tokens(tokenizer, request)
    return Usage(prompt, meter.content_events, None, "counted")


async def body_usage(
    tokenizer: Tokenizer | None, request: GatewayRequest, content: bytes, estimated: Usage
) -> Usage:
    """A whole answer's usage by the engine's own tokenizer, else the estimate."""
    answer = json_object(content)
    if answer is None or tokenizer is None:
        return estimated
    model = _model(request)
    prompt = await tokenizer.count(prompt_text(request.payload), model)
    completion = await tokenizer.count(answer_text(answer), model)
    if prompt is None or completion is None:
        return estimated
    return Usage(prompt, completion, None, "engine")


async def prompt_tokens(tokenizer: Tokenizer | None, request: GatewayRequest) -> int:
    if tokenizer is not None:
        counted = await tokenizer.count(prompt_text(request.payload), _model(request))
        if counted is not None:
            return counted
    return estimate_tokens(prompt_text_length(request.payload))


def _model(request: GatewayRequest) -> str | None:
    model = request.payload.get("model") if request.payload else None
    return model if isinstance(model, str) else None


def asked_for_usage(payload: dict[str, Any]) -> bool:
    """The client asked for a stream's usage (``stream_options.include_usage``)."""
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def split_at_done(data: bytes) -> tuple[bytes, bytes]:
    """The events before ``data: [DONE]``, and the rest from it on (empty: none in ``data``)."""
    events = split_events(data)
    for index, event in enumerate(events):
        if event.rstrip(b"\r\n").endswith(DONE_EVENT):
            return b"".join(events[:index]), b"".join(events[index:])
    return data, b""


def usage_event(head: Chunk | None, path: str, usage: Usage) -> bytes:
    """The usage-only chunk OpenAI ends a stream with, as the engine's chunks name themselves."""
    completion = path == COMPLETIONS
    chunk: dict[str, Any] = {
        "id": head.id if head is not None and head.id is not None else "",
        "object": (head.object if head is not None and head.object else None)
        or ("text_completion" if completion else "chat.completion.chunk"),
        "created": head.created if head is not None and head.created is not None else 0,
        "model": head.model if head is not None and head.model is not None else "",
        "choices": [],
        "usage": chat_usage(usage),
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def with_completed_usage(data: bytes, usage: Usage) -> bytes:
    """These events with usage added to a ``response.completed`` that has none."""
    if COMPLETED not in data:
        return data
    out = []
    for event in split_events(data):
        if COMPLETED in event:
            event = _completed_with_usage(event, usage)
        out.append(event)
    return b"".join(out)


def completed_lacks_usage(data: bytes) -> bool:
    """Whether these events hold a ``response.completed`` whose response has no usage."""
    if COMPLETED not in data:
        return False
    for event in split_events(data):
        if COMPLETED in event:
            found = _data_object(event)
            response = found.get("response") if found else None
            if isinstance(response, dict) and not isinstance(response.get("usage"), dict):
                return True
    return False


def with_body_usage(content: bytes, path: str, usage: Usage) -> bytes:
    """A whole answer with ``usage`` added in its endpoint's shape (if it had none)."""
    answer = json_object(content)
    if answer is None or isinstance(answer.get("usage"), dict):
        return content
    answer["usage"] = responses_usage(usage) if path == RESPONSES else chat_usage(usage, path)
    return orjson.dumps(answer)


def chat_usage(usage: Usage, path: str = "") -> dict[str, int]:
    prompt, completion = usage.prompt or 0, usage.completion or 0
    if path == EMBEDDINGS:
        return {"prompt_tokens": prompt, "total_tokens": prompt}
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def responses_usage(usage: Usage) -> dict[str, int]:
    prompt, completion = usage.prompt or 0, usage.completion or 0
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _data_object(event: bytes) -> dict[str, Any] | None:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            return json_object(line[5:].strip())
    return None


def _completed_with_usage(event: bytes, usage: Usage) -> bytes:
    lines = event.split(b"\n")
    for index, line in enumerate(lines):
        if line.startswith(b"data:"):
            found = json_object(line[5:].strip())
            response = found.get("response") if found else None
            if found is None or not isinstance(response, dict):
                return event
            if isinstance(response.get("usage"), dict):
                return event
            response["usage"] = responses_usage(usage)
            lines[index] = (
                b"data: " + orjson.dumps(found) + (b"\r" if line.endswith(b"\r") else b"")
            )
            return b"\n".join(lines)
    return event
