import json

import pytest

from llm_gateway.errors import AuthenticationFailed
from llm_gateway.keys import websocket_token
from llm_gateway.realtime.usage import event_usage


def test_usage_of_done_events_and_nothing_else():
    done = {"type": "response.done", "response": {"usage": {"input_tokens": 5, "output_tokens": 7}}}
    assert event_usage(json.dumps(done)) == (5, 7)
    vllm = {"type": "transcription.done", "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    assert event_usage(json.dumps(vllm)) == (3, 4)
    assert event_usage(json.dumps({"type": "response.delta", "delta": "response.done"})) is None
    assert event_usage('{"type": "response.done"') is None  # broken JSON
    assert event_usage(json.dumps({"type": "response.done", "response": {"usage": None}})) is None
    assert event_usage("plain text") is None


def test_the_key_from_the_header_or_the_subprotocol():
    assert websocket_token([(b"authorization", b"Bearer sk-a")], []) == "sk-a"
    assert websocket_token([], ["realtime", "openai-insecure-api-key.sk-b"]) == "sk-b"
    with pytest.raises(AuthenticationFailed) as missing:
        websocket_token([], ["realtime", "openai-insecure-api-key."])
    assert missing.value.code == "missing_api_key"
