"""What OpenAI's API refuses, refused before the engine: required fields missing, or of the
wrong JSON type, on the endpoints the gateway reads. A 400 names the field in ``param``.

Only the fields below are looked at, and only their types: unknown fields and engine-specific
extras (vLLM and SGLang accept many) pass untouched, values are never rewritten, and whatever
the engine then refuses on its own (an unknown model, a value out of range) is its answer.
The body is already parsed (``exchange.parse_payload``): these are a few type tests on a dict,
measured by ``bench/feature_cost.py``, not a second parse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidRequestError
from .endpoints import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES

Check = Callable[[Any], bool]


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _object(value: Any) -> bool:
    return isinstance(value, dict)


def _string_or_strings(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def _prompt(value: Any) -> bool:
    """A string, strings, or token ids (one list or a list of lists), as completions take."""
    if isinstance(value, str) or _tokens(value):
        return True
    return isinstance(value, list) and all(isinstance(v, str) or _tokens(v) for v in value)


def _tokens(value: Any) -> bool:
    return isinstance(value, list) and all(_integer(item) for item in value)


def _messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in value)
    )


# Each: the JSON type's name (in OpenAI's words) and its test.
INTEGER = ("an integer", _integer)
NUMBER = ("a number", _number)
BOOLEAN = ("a boolean", _boolean)
STRING = ("a string", _string)
OBJECT = ("an object", _object)
STOP = ("a string or an array of strings", _string_or_strings)

COMMON: dict[str, tuple[str, Check]] = {
    "model": STRING,
    "stream": BOOLEAN,
    "n": INTEGER,
    "max_tokens": INTEGER,
    "temperature": NUMBER,
    "top_p": NUMBER,
    "presence_penalty": NUMBER,
    "frequency_penalty": NUMBER,
    "seed": INTEGER,
    "stop": STOP,
    "user": STRING,
    "logit_bias": OBJECT,
    "stream_options": OBJECT,
}
FIELDS: dict[str, dict[str, tuple[str, Check]]] = {
    CHAT: {
        **COMMON,
        "messages": ("a non-empty array of objects, each with a string 'role'", _messages),
        "max_completion_tokens": INTEGER,
        "logprobs": BOOLEAN,
        "top_logprobs": INTEGER,
        "response_format": OBJECT,
    },
    COMPLETIONS: {
        **COMMON,
        "prompt": ("a string, an array of strings or an array of token ids", _prompt),
        "logprobs": INTEGER,
        "echo": BOOLEAN,
        "best_of": INTEGER,
        "suffix": STRING,
    },
    EMBEDDINGS: {
        "model": STRING,
        "input": ("a string, an array of strings or an array of token ids", _prompt),
        "dimensions": INTEGER,
        "encoding_format": STRING,
        "user": STRING,
    },
    RESPONSES: {
        "model": STRING,
        "stream": BOOLEAN,
        "instructions": STRING,
        "max_output_tokens": INTEGER,
        "temperature": NUMBER,
        "top_p": NUMBER,
        "previous_response_id": STRING,
        "user": STRING,
    },
}
REQUIRED: dict[str, tuple[str, ...]] = {
    CHAT: ("model", "messages"),
    COMPLETIONS: ("model", "prompt"),
    EMBEDDINGS: ("model", "input"),
    RESPONSES: ("model",),
}
JSON_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def check_payload(path: str, payload: dict[str, Any]) -> None:
    """Raise ``InvalidRequestError`` (400, ``param`` the field) if OpenAI would refuse it."""
    fields = FIELDS.get(path)
    if fields is None:
        return
    required = REQUIRED[path]
    for name in required:
        if payload.get(name) is None:
            raise InvalidRequestError(
                f"Missing required parameter: '{name}'.",
                param=name,
                code="missing_required_parameter",
            )
    for name, value in payload.items():
        expected = fields.get(name)
        if expected is None or (value is None and name not in required):
            continue  # another field, or null for an optional one (OpenAI takes both)
        if not expected[1](value):
            got = JSON_NAMES.get(type(value), type(value).__name__)
            raise InvalidRequestError(
                f"Invalid type for '{name}': expected {expected[0]}, but got {got} instead.",
                param=name,
                code="invalid_type",
            )
