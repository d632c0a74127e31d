"""What a span tells of an answer, read from the bytes the client got: its id, model and
finish reasons (always, cheaply: a stream's first event parsed, and its last chunks searched
once it ended), and with content capture opted in, the messages in and out in the
conventions' shape."""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import orjson

FINISH_REASON = re.compile(rb'"(?:finish_reason|stop_reason)":\s*"([^"]+)"')
DATA = b"data:"
TAIL = 4  # a stream's last chunks kept: its finish reasons are in its last events


class AnswerReader:
    """Fed what the client got, chunk by chunk (a whole answer: once)."""

    __slots__ = ("id", "model", "finish_reasons", "stream", "capture", "texts", "tail")

    def __init__(self, stream: bool, capture: bool) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.finish_reasons: list[str] = []
        self.stream = stream
        self.capture = capture
        self.texts: dict[int, list[str]] = {}  # choice index: its text, when capturing
        self.tail: deque[bytes] = deque(maxlen=TAIL)

    def feed(self, data: bytes, first: bool) -> None:
        if not self.stream:
            self._whole(data)
            return
        if first:
            self._head(data)
        if self.capture:
            self._reasons(data)
            for event in _events(data):
                self._delta(event)
        else:
            self.tail.append(data)  # searched at the end: no work per chunk

    def ended(self) -> None:
        """The stream is over: its finish reasons, from its last chunks."""
        for data in self.tail:
            self._reasons(data)
        self.tail.clear()

    def _reasons(self, data: bytes) -> None:
        for reason in FINISH_REASON.findall(data):
            if (word := reason.decode("utf-8", "replace")) not in self.finish_reasons:
                self.finish_reasons.append(word)

    def _head(self, data: bytes) -> None:
        """The stream's id and model, from its first event (the Messages API nests them).
        A first chunk may hold the whole stream: only its first event is parsed."""
        for event in _events(data, first=True):
            head: dict[str, Any] = event
            for nested in ("message", "response"):  # the Messages and Responses APIs'
                if isinstance(inner := head.get(nested), dict):
                    head = inner
            if isinstance(head.get("id"), str):
                self.id = head["id"]
            if isinstance(head.get("model"), str):
                self.model = head["model"]
            return

    def _whole(self, data: bytes) -> None:
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(body, dict):
            return
        if isinstance(body.get("id"), str):
            self.id = body["id"]
        if isinstance(body.get("model"), str):
            self.model = body["model"]
        choices = body.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
                self.finish_reasons.append(choice["finish_reason"])
            if self.capture and isinstance(choice, dict):
                index = choice.get("index", 0) if isinstance(choice.get("index"), int) else 0
                message = choice.get("message")
                text = message.get("content") if isinstance(message, dict) else choice.get("text")
                if isinstance(text, str):
                    self.texts.setdefault(index, []).append(text)
        if isinstance(body.get("stop_reason"), str):
            self.finish_reasons.append(body["stop_reason"])

    def _delta(self, event: dict[str, Any]) -> None:
        choices = event.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(text, str) and text:
                index = choice.get("index", 0) if isinstance(choice.get("index"), int) else 0
                self.texts.setdefault(index, []).append(text)

    def output_messages(self) -> str:
        """``gen_ai.output.messages``: one assistant message per choice, as JSON."""
        reasons = self.finish_reasons
        messages = [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "".join(parts)}],
                "finish_reason": reasons[index] if index < len(reasons) else "",
            }
            for index, parts in sorted(self.texts.items())
        ]
        return orjson.dumps(messages).decode()


def _events(data: bytes, first: bool = False) -> list[dict[str, Any]]:
    """The JSON events of whole SSE events (``[DONE]`` and the unreadable skipped); only the
    first one that reads, with ``first``."""
    out = []
    for line in data.split(b"\n"):
        if line.startswith(DATA):
            try:
                event = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                out.append(event)
                if first:
                    break
    return out


def input_messages(payload: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """``gen_ai.input.messages`` and ``gen_ai.system_instructions`` of a request, as JSON
    (content capture only): chat messages, a completion's prompt, a Responses API input."""
    if not payload:
        return None, None
    messages: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    raw = payload.get("messages")
    if isinstance(raw, list):
        for message in raw:
            if not isinstance(message, dict):
                continue
            role = message.get("role") if isinstance(message.get("role"), str) else "user"
            parts = _parts(message.get("content"))
            (system if role in ("system", "developer") else messages).append(
                {"role": role, "parts": parts}
            )
        if isinstance(payload.get("system"), str):  # the Messages API's
            system.append({"role": "system", "parts": _parts(payload["system"])})
    else:
        prompt = payload.get("prompt", payload.get("input"))
        if prompt is not None:
            messages.append({"role": "user", "parts": _parts(prompt)})
    flat = [part for entry in system for part in entry["parts"]]
    return (
        orjson.dumps(messages).decode() if messages else None,
        orjson.dumps(flat).decode() if flat else None,
    )


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        out: list[dict[str, Any]] = []
        for item in content:
            if isinstance(item, str):
                out.append({"type": "text", "content": item})
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                out.append({"type": "text", "content": item["text"]})
            elif isinstance(item, dict):
                out.append({"type": str(item.get("type", "unknown"))})  # an image: its type
        return out
    return [] if content is None else [{"type": "text", "content": orjson.dumps(content).decode()}]
