"""What OpenAI refuses is refused before the engine; everything else passes untouched."""

from __future__ import annotations

from typing import Any

import pytest

from llm_gateway.core.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES
from llm_gateway.core.validate import check_payload
from llm_gateway.errors import InvalidRequestError

MESSAGES = [{"role": "user", "content": "hi"}]


def refusal(path: str, payload: dict[str, Any]) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        check_payload(path, payload)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("path", "payload", "param"),
    [
        (CHAT, {"messages": MESSAGES}, "model"),
        (CHAT, {"model": "m"}, "messages"),
        (CHAT, {"model": "m", "messages": None}, "messages"),
        (COMPLETIONS, {"model": "m"}, "prompt"),
        (EMBEDDINGS, {"model": "m"}, "input"),
        (RESPONSES, {"input": "hi"}, "model"),
    ],
)
def test_a_missing_required_field_is_named(path: str, payload: dict[str, Any], param: str) -> None:
    error = refusal(path, payload)
    assert (error.param, error.code) == (param, "missing_required_parameter")
    assert f"'{param}'" in str(error.message)


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        (CHAT, "messages", "hello"),  # the quick-start engine answered this with a 500
        (CHAT, "messages", []),
        (CHAT, "messages", [{"content": "no role"}]),
        (CHAT, "messages", [{"role": 1, "content": "x"}]),
        (CHAT, "messages", ["user: hi"]),
        (CHAT, "model", 7),
        (CHAT, "max_tokens", "16"),
        (CHAT, "max_tokens", 1.5),
        (CHAT, "n", True),
        (CHAT, "temperature", "hot"),
        (CHAT, "stream", "yes"),
        (CHAT, "stop", [1, 2]),
        (CHAT, "stream_options", True),
        (COMPLETIONS, "prompt", {"text": "x"}),
        (COMPLETIONS, "prompt", [[1, "a"]]),
        (COMPLETIONS, "logprobs", True),
        (EMBEDDINGS, "input", 3),
        (RESPONSES, "max_output_tokens", "9"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(path: str, field: str, value: Any) -> None:
    base = {
        CHAT: {"model": "m", "messages": MESSAGES},
        COMPLETIONS: {"model": "m", "prompt": "hi"},
        EMBEDDINGS: {"model": "m", "input": "hi"},
        RESPONSES: {"model": "m", "input": "hi"},
    }[path]
    error = refusal(path, {**base, field: value})
    assert (error.param, error.code) == (field, "invalid_type")
    assert f"'{field}'" in str(error.message)


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        (CHAT, {"model": "m", "messages": MESSAGES}),
        (CHAT, {"model": "m", "messages": MESSAGES, "temperature": 0, "top_p": 0.5, "n": 1}),
        (CHAT, {"model": "m", "messages": MESSAGES, "max_tokens": None, "stop": None}),
        (CHAT, {"model": "m", "messages": MESSAGES, "stop": "\n", "seed": 3}),
        # engine-specific extras (vLLM, SGLang) pass whatever their type
        (CHAT, {"model": "m", "messages": MESSAGES, "top_k": 5, "guided_json": {}, "x": [1]}),
        (COMPLETIONS, {"model": "m", "prompt": ["a", "b"]}),
        (COMPLETIONS, {"model": "m", "prompt": [1, 2, 3]}),
        (COMPLETIONS, {"model": "m", "prompt": [[1, 2], [3]], "logprobs": 2}),
        (EMBEDDINGS, {"model": "m", "input": ["a"], "dimensions": 8}),
        (RESPONSES, {"model": "m", "input": [{"role": "user", "content": "x"}]}),
        ("/v1/models", {}),
        ("/v1/unknown", {"anything": object()}),
    ],
)
def test_what_openai_takes_passes_untouched(path: str, payload: dict[str, Any]) -> None:
    before = repr(payload)
    check_payload(path, payload)
    assert repr(payload) == before
