"""Request and response logging for the relay (``LLM_GATEWAY_LOG_RESPONSES``).

Streams are tapped as they pass: each chunk is decoded *after* it was sent, content is joined
up to ``LLM_GATEWAY_LOG_MAX_CHARS`` and one line is written when the stream ends, however it
ends. Memory stays bounded by that limit, not by the stream's length (vLLM collected the
whole stream, and its truncation marker never appeared).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from .sse import SSEDecoder, extract_content

logger = logging.getLogger("llm_gateway.responses")
MARKER = "...[truncated]"


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + MARKER


def log_request(method: str, path: str, payload: dict[str, Any] | None, size: int) -> None:
    model = payload.get("model") if payload else None
    stream = bool(payload.get("stream")) if payload else False
    logger.info("request %s %s model=%s stream=%s bytes=%d", method, path, model, stream, size)


def log_body(status: int, body: bytes, limit: int) -> None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = "<binary>"
    logger.info("response status=%d body=%s", status, cut(text, limit))


class StreamTap:
    """Watches an SSE stream go by and logs one summary line at its end."""

    __slots__ = (
        "_decoder",
        "_parts",
        "_size",
        "_limit",
        "_truncated",
        "chunks",
        "model",
        "finish_reason",
        "_logged",
        "done",
        "usage",
    )

    def __init__(self, limit: int) -> None:
        self._decoder = SSEDecoder()
        self._parts: list[str] = []
        self._size = 0
        self._limit = limit
        self._truncated = False
        self._logged = False
        self.chunks = 0
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.usage: dict[str, Any] | None = None

    @property
    def content(self) -> str:
        text = "".join(self._parts)
        return text + MARKER if self._truncated else text

    def feed(self, data: bytes) -> None:
        payloads: list[bytes] | list[str] | None = self._decoder.whole_data_payloads(data)
        if payloads is None:
            payloads = [event.data for event in self._decoder.decode_chunk(data)]
        for item in payloads:
            if item == b"[DONE]" or item == "[DONE]":
                self.done = True
                continue
            self.chunks += 1
            try:
                payload = orjson.loads(item)
            except orjson.JSONDecodeError:
                if not isinstance(item, bytes):
                    continue
                try:  # orjson refuses invalid UTF-8; the decoder would read it as U+FFFD
                    payload = orjson.loads(item.decode("utf-8", "replace"))
                except orjson.JSONDecodeError:
                    continue
            if isinstance(payload, dict):
                self._observe(payload)

    def _observe(self, payload: dict[str, Any]) -> None:
        usage = payload.get("usage")
        if usage and isinstance(usage, dict):
            self.usage = usage
        if self.model is None and isinstance(payload.get("model"), str):
            self.model = payload["model"]
        choices = payload.get("choices")
        text: str | None = None
        if choices and isinstance(choices, list) and isinstance(choices[0], dict):
            first = choices[0]
            if reason := first.get("finish_reason"):
                self.finish_reason = str(reason)
            if len(choices) == 1:  # the common case, without extract_content's generality
                delta = first.get("delta")
                text = delta.get("content") if isinstance(delta, dict) else first.get("text")
                if not isinstance(text, str):
                    text = ""
        if self._truncated:
            return
        if text is None:
            text = extract_content(payload)
        if not text:
            return
        room = self._limit - self._size
        if len(text) > room:
            text, self._truncated = text[:room], True
        self._parts.append(text)
        self._size += len(text)

    def log(self, outcome: str) -> None:
        """Write the summary once, whatever ended the stream."""
        if self._logged:
            return
        self._logged = True
        logger.info(
            "stream end=%s model=%s chunks=%d finish_reason=%s usage=%s content=%s",
            outcome,
            self.model,
            self.chunks,
            self.finish_reason,
            self._usage_text(),
            self.content,
        )

    def _usage_text(self) -> str:
        """prompt/completion/total tokens, or 'unknown': llama.cpp's server sends no usage
        chunk even when ``stream_options.include_usage`` asks for one."""
        usage = self.usage
        if not usage:
            return "unknown"
        keys = ("prompt_tokens", "completion_tokens", "total_tokens")
        return "/".join(str(usage.get(k, "?")) for k in keys)
