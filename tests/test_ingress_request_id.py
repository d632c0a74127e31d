import asyncio

import pytest

from llm_gateway.asgi.request_id import RequestIdMiddleware
from llm_gateway.ingress.request_id import choose, get_request_id, is_valid

from .asgi_helpers import call, http_scope


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (b"abc", True),
        (b"a" * 128, True),
        (b"a" * 129, False),
        (b"", False),
        (b"has space", False),
        (b"tab\there", False),
        (b"\x7f", False),
        ("é".encode(), False),
        (b"!~", True),
    ],
)
def test_is_valid(value, valid):
    assert is_valid(value) is valid


def test_choose_keeps_valid_and_replaces_invalid():
    assert choose(b"req-1") == "req-1"
    fresh = choose(b"bad id")
    assert len(fresh) == 32 and int(fresh, 16) >= 0
    assert choose(None) != choose(None)


async def _app_with_existing_header(scope, receive, send):
    _app_with_existing_header.seen = get_request_id()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"X-Request-Id", b"inner")]}
    )
    await send({"type": "http.response.body", "body": b""})


def test_middleware_sets_exactly_one_header_and_the_contextvar():
    app = RequestIdMiddleware(_app_with_existing_header)
    scope = http_scope(headers=[(b"x-request-id", b"client-id")])
    status, headers, _, _ = asyncio.run(call(app, scope))
    assert headers[b"x-request-id"] == [b"client-id"]
    assert _app_with_existing_header.seen == "client-id"
    assert scope["llm_gateway.request_id"] == "client-id"
    assert get_request_id() is None  # reset after the request


def test_middleware_replaces_an_invalid_id():
    app = RequestIdMiddleware(_app_with_existing_header)
    _, headers, _, _ = asyncio.run(call(app, http_scope(headers=[(b"x-request-id", b"x" * 200)])))
    (value,) = headers[b"x-request-id"]
    assert len(value) == 32 and value != b"x" * 200
