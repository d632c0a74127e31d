from llm_gateway.core.request import GatewayRequest
from llm_gateway.limits.reserve import requested_model, reserved_tokens


def request(path="/chat/completions", body=b"", method="POST", payload=None, headers=()):
    return GatewayRequest(method, path, b"", list(headers), body, "r", None, payload=payload)


def test_the_model_wherever_the_endpoint_puts_it():
    assert requested_model(request(payload={"model": "m"})) == "m"
    assert requested_model(request("/tokenize", b'{"model": "t", "prompt": "x"}')) == "t"
    assert requested_model(request("/models/abc", method="GET")) == "abc"
    form = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF\r\n'
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--b--\r\n'
    )
    headers = [(b"content-type", b"multipart/form-data; boundary=b")]
    assert requested_model(request("/audio/transcriptions", form, headers=headers)) == "whisper-1"
    assert requested_model(request("/tokenize", b"{not json")) is None
    assert requested_model(request(payload={"model": ["x"]})) is None


def test_the_reservation_is_the_prompt_and_the_most_the_answer_may_hold():
    chat = {"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 30}
    assert reserved_tokens("/chat/completions", chat, 1024) == 10 + 30
    assert reserved_tokens("/chat/completions", {**chat, "n": 3}, 1024) == 10 + 90
    newer = {"messages": chat["messages"], "max_completion_tokens": 5, "max_tokens": 99}
    assert reserved_tokens("/chat/completions", newer, 1024) == 15
    assert reserved_tokens("/chat/completions", {"messages": chat["messages"]}, 1024) == 1034
    assert reserved_tokens("/responses", {"input": "x" * 8, "max_output_tokens": 3}, 1) == 5
    assert reserved_tokens("/embeddings", {"input": ["x" * 8, "y" * 8]}, 1024) == 4
    assert reserved_tokens("/chat/completions", {"max_tokens": True}, 7) == 7  # not a number
