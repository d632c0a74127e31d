"""What OpenAI refuses is refused by the gateway, before the engine, on both faces: the
openai SDK gets a 400 naming the field, and the engine never sees the request. What OpenAI
takes, engine extras included, reaches the engine as it was sent."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = {"model": "fake-model", "messages": MESSAGES}

REFUSED = [  # (path, body, the field named, the code)
    ("/chat/completions", {"model": "fake-model"}, "messages", "missing_required_parameter"),
    ("/chat/completions", {"model": "fake-model", "messages": []}, "messages", "invalid_type"),
    ("/chat/completions", {**CHAT, "messages": [{"x": 1}]}, "messages", "invalid_type"),
    ("/chat/completions", {"model": 7, "messages": MESSAGES}, "model", "invalid_type"),
    ("/chat/completions", {**CHAT, "max_tokens": "9"}, "max_tokens", "invalid_type"),
    ("/chat/completions", {**CHAT, "temperature": "hot"}, "temperature", "invalid_type"),
    ("/chat/completions", {**CHAT, "n": 1.5}, "n", "invalid_type"),
    ("/chat/completions", {**CHAT, "stream": "yes"}, "stream", "invalid_type"),
    ("/completions", {"model": "fake-model"}, "prompt", "missing_required_parameter"),
    ("/completions", {"model": "fake-model", "prompt": {"a": 1}}, "prompt", "invalid_type"),
    ("/embeddings", {"model": "fake-model", "input": 3.5}, "input", "invalid_type"),
    ("/responses", {"input": "hi"}, "model", "missing_required_parameter"),
]


def sdk(gateway, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.api, api_key=api_key, max_retries=0)


@pytest.mark.parametrize(("path", "body", "param", "code"), REFUSED)
def test_a_body_openai_refuses_is_a_400_and_never_reaches_the_engine(
    face_gateway, api_key, fake_requests, path, body, param, code
):
    # The SDK's raw post sends the body as it is (its typed methods would refuse it first,
    # a client in another language would not).
    with pytest.raises(openai.BadRequestError) as info:
        sdk(face_gateway, api_key).post(path, body=body, cast_to=httpx.Response)
    error = info.value.body
    assert info.value.status_code == 400
    assert set(error) == {"message", "type", "param", "code"}, error
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert param in error["message"]
    assert fake_requests() == []


def test_what_openai_takes_reaches_the_engine_untouched(face_gateway, api_key, fake_requests):
    extras = {"top_k": 5, "repetition_penalty": 1.1, "guided_json": {"type": "object"}}
    sdk(face_gateway, api_key).chat.completions.create(
        model="fake-model", messages=MESSAGES, max_tokens=9, temperature=None, extra_body=extras
    )
    [seen] = fake_requests()
    sent = json.loads(seen["body"])
    assert sent["top_k"] == 5 and sent["guided_json"] == {"type": "object"}
    assert sent["max_tokens"] == 9 and sent["temperature"] is None
