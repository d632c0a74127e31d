"""What each request used, exact for streams and disconnects: the core's usage accounting.

- Streams of chat and completions: when the client did not ask for
  ``stream_options.include_usage``, the engine is asked for it (``ask_for_usage``) and its
  usage event is withheld from the client (``withhold_usage_events``), so the client gets
  the bytes it would have got without the gateway's change.
- ``StreamMeter`` reads the events after they were sent: the time to first token, the
  content events (a token each, as engines send them), and the engine's usage. The first
  events are read at once (for the first token); the rest in batches of up to 4 KiB, so the
  cost does not grow with the number of chunks.
- Engines that send no usage in streams (llama-cpp-python's server): completion tokens are
  the content events relayed (``counted``), prompt tokens estimated from the request. A
  client that leaves mid-stream is charged for what was relayed up to then.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from ..sse.boundary import DONE, split_events
from ..sse.chunks import Chunk, chunk_text, decode_chunks
from ..sse.decoder import SSEDecoder

CHARS_PER_TOKEN = 4  # the usual estimate for English text with BPE vocabularies
ANTHROPIC_USAGE_EVENTS = frozenset({"message_start", "message_delta"})


class Usage:
    """Token counts and where they came from: ``engine``, ``counted`` or ``estimated``."""

    __slots__ = ("prompt", "completion", "cached", "source")

    def __init__(
        self, prompt: int | None, completion: int | None, cached: int | None, source: str
    ) -> None:
        self.prompt, self.completion, self.cached, self.source = prompt, completion, cached, source


def from_engine(usage: dict[str, Any]) -> Usage | None:
    """An engine's usage object: chat/completions/embeddings, or the Responses API's; None
    when it holds no count at all (``{"prompt_tokens": null}``): then the tokens are counted
    or estimated, as for an engine that sends no usage."""
    prompt = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    if completion is None and prompt is not None and "total_tokens" in usage:
        completion = max(0, (_int(usage["total_tokens"]) or 0) - prompt)  # embeddings
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else None
    if "cache_read_input_tokens" in usage or "cache_creation_input_tokens" in usage:
        # Anthropic's Messages API: input_tokens leaves out the prompt read from or written
        # to the cache; the prompt is all three, and the cached part is what was read.
        cached = _int(usage.get("cache_read_input_tokens")) or 0
        written = _int(usage.get("cache_creation_input_tokens")) or 0
        prompt = (prompt or 0) + cached + written
    if prompt is None and completion is None:
        return None
    return Usage(prompt, completion, cached, "engine")


def _int(value: Any) -> int | None:
    """A token count: a whole number, not below 0 (a negative one would give tokens back to
    a budget when settled)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def estimate_tokens(text_length: int) -> int:
    return math.ceil(text_length / CHARS_PER_TOKEN)


def prompt_text_length(payload: dict[str, Any] | None) -> int:
    """Characters of prompt in a request body: messages, prompt, or input."""
    if not payload:
        return 0
    total = 0
    for message in payload.get("messages") or ():
        if isinstance(message, dict):
            total += _text_length(message.get("content"))
    texts = ("prompt", "input", "system")  # system: the Messages API's, apart from messages
    return total + sum(_text_length(payload.get(name)) for name in texts)


def _text_length(value: Any) -> int:
    return sum(map(len, _texts(value)))


class Asked:
    """What the gateway asked of the engine that the client did not: the client never sees
    it (``withhold``: the usage-only event; ``strip``: the usage in every chunk)."""

    __slots__ = ("body", "withhold", "strip")

    def __init__(self, body: bytes, withhold: bool, strip: bool) -> None:
        self.body, self.withhold, self.strip = body, withhold, strip


def ask_for_usage(body: bytes, payload: dict[str, Any], continuous: bool) -> Asked | None:
    """The body asking for usage (``include_usage``, and ``continuous_usage_stats`` when the
    engine has it), for a stream that did not ask for it all; else None (the body goes as
    it came)."""
    if payload.get("stream") is not True:
        return None
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        return None  # the engine will refuse it as it would have
    has_usage = bool(options and options.get("include_usage"))
    has_continuous = bool(options and options.get("continuous_usage_stats"))
    if has_usage and (has_continuous or not continuous):
        return None
    if continuous:
        wanted = {**(options or {}), "include_usage": True, "continuous_usage_stats": True}
        return Asked(
            orjson.dumps({**payload, "stream_options": wanted}), not has_usage, not has_continuous
        )
    return Asked(_with_include_usage(body, payload, options), True, False)


def _with_include_usage(body: bytes, payload: dict[str, Any], options: Any) -> bytes:
    if options is None:
        # Appended before the closing brace: the client's bytes stay as they were.
        end = body.rstrip().rfind(b"}")
        if end > 0:
            head = body[:end].rstrip()
            comma = b"" if head.endswith(b"{") else b","
            return head + comma + b'"stream_options":{"include_usage":true}' + body[end:]
    return orjson.dumps({**payload, "stream_options": {**(options or {}), "include_usage": True}})


def withhold_usage_events(data: bytes) -> bytes:
    """Whole events without the usage-only ones (``choices`` empty, ``usage`` set), which the
    engine sent because the gateway asked. Other events keep their bytes."""
    if b'"usage"' not in data:
        return data
    kept: list[bytes] = []
    for event in split_events(data):
        if not _is_usage_event(event):
            kept.append(event)
    return b"".join(kept)


def strip_usage_fields(data: bytes) -> bytes:
    """Whole events with the ``usage`` of content chunks removed (continuous usage stats the
    client did not ask for); events without it keep their bytes."""
    if b'"usage"' not in data:
        return data
    out: list[bytes] = []
    for event in split_events(data):
        if b'"usage"' in event and event.startswith(b"data: {"):
            end = len(event) - len(event.rstrip(b"\r\n"))
            try:
                chunk = orjson.loads(event[6 : len(event) - end])
            except orjson.JSONDecodeError:
                out.append(event)
                continue
            if isinstance(chunk, dict) and chunk.get("choices") and "usage" in chunk:
                del chunk["usage"]
                event = b"data: " + orjson.dumps(chunk) + event[len(event) - end :]
        out.append(event)
    return b"".join(out)


def _is_usage_event(event: bytes) -> bool:
    if b'"usage"' not in event:
        return False
    payloads = SSEDecoder().data_payloads(event if event.endswith(b"\n") else event + b"\n\n")
    chunks = decode_chunks(payloads)
    return len(chunks) == 1 and not chunks[0].choices and bool(chunks[0].usage)


class StreamMeter:
    """Reads a stream's events after they were sent: first token, content events, usage."""

    BATCH_BYTES = 4096

    __slots__ = (
        "_decoder",
        "_pending",
        "_pending_size",
        "content_events",
        "usage",
        "first",
        "head",
    )

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.content_events = 0
        self.usage: dict[str, Any] | None = None
        self.head: Chunk | None = None  # the first chunk: its id, object, created, model
        self.first = True  # no content seen yet: each chunk is read at once

    def feed(self, data: bytes) -> bool:
        """Read (or keep) these sent bytes; True when they carried the first token."""
        if self.first:
            self._read(data)
            if self.content_events:
                self.first = False
                return True
            return False
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= self.BATCH_BYTES:
            self.flush()
        return False

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            self._read(data)

    def _read(self, data: bytes) -> None:
        payloads = [p for p in self._decoder.data_payloads(data) if p != DONE]
        for chunk in decode_chunks(payloads):
            self._count(chunk)

    def _count(self, chunk: Chunk) -> None:
        if self.head is None:
            self.head = chunk
        if chunk_text(chunk):
            self.content_events += 1
        if chunk.type in ANTHROPIC_USAGE_EVENTS:
            # message_start carries the input tokens, each message_delta the output so far.
            usage = chunk.usage if chunk.usage else (chunk.message or {}).get("usage")
            if isinstance(usage, dict):
                self.usage = {**(self.usage or {}), **usage}
        elif chunk.usage:
            self.usage = chunk.usage
        elif chunk.type == "response.completed" and isinstance(chunk.response, dict):
            usage = chunk.response.get("usage")
            if isinstance(usage, dict):
                self.usage = usage

    def result(self, prompt_chars: int) -> Usage:
        """The stream's usage: the engine's, else counted (prompt tokens estimated)."""
        self.flush()
        if self.usage is not None and (usage := from_engine(self.usage)) is not None:
            return usage
        return Usage(estimate_tokens(prompt_chars), self.content_events, None, "counted")


def whole_body_usage(content: bytes, prompt_chars: int) -> Usage | None:
    """The usage of a non-streamed JSON answer: the engine's, else an estimate."""
    answer = json_object(content)
    if answer is None:
        return None
    usage = answer.get("usage")
    if isinstance(usage, dict) and (counted := from_engine(usage)) is not None:
        return counted
    text = len(answer_text(answer))
    return Usage(estimate_tokens(prompt_chars), estimate_tokens(text), None, "estimated")


def json_object(content: bytes) -> dict[str, Any] | None:
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


def answer_text(answer: dict[str, Any]) -> str:
    """The text a whole answer holds: its choices' (chat, completions), or the Responses
    API's output."""
    parts: list[str] = []
    choices = answer.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict):
            message = choice.get("message")
            parts += _texts(choice.get("text"))
            parts += _texts(message.get("content") if isinstance(message, dict) else None)
    output = answer.get("output")
    for item in output if isinstance(output, list) else ():
        if isinstance(item, dict):
            parts += _texts(item.get("content"))
    return "".join(parts)


def prompt_text(payload: dict[str, Any] | None) -> str:
    """The prompt's text, as ``prompt_text_length`` counts it (for a tokenizer)."""
    if not payload:
        return ""
    parts: list[str] = []
    for message in payload.get("messages") or ():
        if isinstance(message, dict):
            parts += _texts(message.get("content"))
    parts += _texts(payload.get("prompt")) + _texts(payload.get("input"))
    return "\n".join(parts + _texts(payload.get("system")))


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):  # a content part, or a Responses input or output item
        return _texts(value.get("text")) + _texts(value.get("content"))
    return []
