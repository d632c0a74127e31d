import orjson
import pytest

from llm_gateway.errors import (
    AuthenticationFailed,
    EngineDeadError,
    EngineGenerateError,
    EngineTimeoutError,
    InvalidRequestError,
    RequestTooLargeError,
    clean_message,
)
from llm_gateway.upstream.errors import error_answer as upstream_error

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/opt/engine/llama_cpp/server/app.py", line 412, in create_chat_completion\n'
    "    raise ValueError(msg)\n"
    "ValueError: Requested tokens (9000) exceed context window of 2048"
)


def test_clean_message_keeps_the_exception_line_only():
    assert (
        clean_message(TRACEBACK)
        == "ValueError: Requested tokens (9000) exceed context window of 2048"
    )
    assert clean_message("Prefix. " + TRACEBACK).startswith("Prefix. ValueError")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("model not found at /models/llama/ggml.gguf", "model not found at <path>"),
        ('File "/x/y.py", line 3, in f: boom', "boom"),
        ('bad input\n\n  File "/a/app.py", line 376, in create\n    POST /v1/x', "bad input"),
        ("C:\\engine\\bin\\x.dll failed", "<path> failed"),
        ("see https://example.com/a/b for help", "see https://example.com/a/b for help"),
        ("POST /v1/chat/completions failed", "POST /v1/chat/completions failed"),
        ("cannot open ./weights/model.safetensors", "cannot open ./weights/model.safetensors"),
        ("cannot open /x/weights/model.safetensors", "cannot open <path>"),
        ("under /home/me/models for", "under <path> for"),
        ("", "The engine returned an error."),
    ],
)
def test_clean_message_paths(raw, expected):
    assert clean_message(raw) == expected


def test_clean_message_caps_length():
    assert clean_message("x" * 5000).endswith("...[truncated]")


@pytest.mark.parametrize(
    ("error", "status", "type_", "code"),
    [
        (InvalidRequestError("m"), 400, "invalid_request_error", "invalid_request"),
        (RequestTooLargeError("m"), 413, "invalid_request_error", "request_too_large"),
        (AuthenticationFailed("m"), 401, "authentication_error", "invalid_api_key"),
        (EngineGenerateError("m"), 502, "server_error", "upstream_error"),
        (EngineTimeoutError("m"), 504, "server_error", "upstream_timeout"),
        (EngineDeadError("m"), 503, "server_error", "engine_unavailable"),
    ],
)
def test_error_bodies_are_openai_shaped(error, status, type_, code):
    assert error.status == status
    assert orjson.loads(error.json()) == {
        "error": {"message": "m", "type": type_, "param": None, "code": code}
    }


def h(content_type=b"application/json"):
    return [(b"Content-Type", content_type), (b"Retry-After", b"3")]


def test_upstream_4xx_keeps_status_and_openai_body():
    body = orjson.dumps(
        {
            "error": {
                "message": "bad " + TRACEBACK,
                "type": "invalid_request_error",
                "param": "messages",
                "code": 42,
            }
        }
    )
    error = upstream_error(400, body, h())
    assert error.status == 400
    assert error.body() == {
        "error": {
            "message": "bad ValueError: Requested tokens (9000) exceed context window of 2048",
            "type": "invalid_request_error",
            "param": "messages",
            "code": 42,
        }
    }
    assert (b"Retry-After", b"3") in error.headers()


def test_upstream_422_fastapi_detail_list():
    body = orjson.dumps(
        {
            "detail": [
                {
                    "loc": ["body", "temperature"],
                    "msg": "Input should be a valid number",
                    "type": "float_parsing",
                }
            ]
        }
    )
    error = upstream_error(422, body, h())
    assert error.status == 422
    assert error.body()["error"]["message"] == "temperature: Input should be a valid number"


def test_upstream_5xx_is_502_and_html_is_never_shown():
    error = upstream_error(503, b"<html>oops at /srv/x.py</html>", h(b"text/html"))
    assert error.status == 502 and error.message == "The engine failed (HTTP 503)."
    text = upstream_error(500, b"boom in /srv/engine/x.py", h(b"text/plain"))
    assert text.message == "The engine failed (HTTP 500): boom in <path>"


def test_upstream_auth_failure_is_the_gateways_problem():
    error = upstream_error(401, b'{"error": {"message": "bad key"}}', h())
    assert error.status == 502 and error.code == "upstream_auth_failed"
