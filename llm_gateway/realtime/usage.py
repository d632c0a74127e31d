"""The usage a realtime session's events report: OpenAI's ``response.done`` (in its
``response.usage``: input and output tokens) and vLLM's ``transcription.done`` (``usage``)."""

from __future__ import annotations

from typing import Any

import orjson

DONE_EVENTS = ('"response.done"', '"transcription.done"')


def event_usage(text: str) -> tuple[int, int] | None:
    """(prompt, completion) tokens of one text frame, if it is a done event with usage."""
    if not any(name in text for name in DONE_EVENTS):  # most frames: no parse at all
        return None
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    usage: Any = None
    if event.get("type") == "response.done" and isinstance(event.get("response"), dict):
        usage = event["response"].get("usage")
    elif event.get("type") == "transcription.done":
        usage = event.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("input_tokens", usage.get("prompt_tokens"))
    completion = usage.get("output_tokens", usage.get("completion_tokens"))
    if not isinstance(prompt, int) and not isinstance(completion, int):
        return None
    return (
        prompt if isinstance(prompt, int) else 0,
        completion if isinstance(completion, int) else 0,
    )
