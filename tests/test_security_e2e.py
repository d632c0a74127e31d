"""Bypass attempts against every guarded surface, without a key: the fast face, the Django
face, a view under ``@api_key_required`` and the WebSocket upgrade. Each is refused (401,
403, 404 or a 400 for a request that is not HTTP), and the engine never sees it."""

from __future__ import annotations

import re
import socket

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ENGINE_PATHS = ("/v1/models", "/v1/chat/completions", "/llm/v1/models")


def raw(server, request: bytes, answers: int = 1) -> bytes:
    """What the server sends back until it closes, or ``answers`` answers have come (a
    half-closed socket would make Twisted drop the request, so the socket stays open)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if len(statuses(answer)) >= answers and answer.endswith((b"}", b"\r\n\r\n")):
                    break
        except OSError:
            pass
    return answer


def statuses(answer: bytes) -> list[int]:
    """The status of each answer in turn: pipelined requests get one each, and an answer's
    status line follows the previous body with no line break between them."""
    found, rest = [], answer
    while rest.startswith(b"HTTP/1.") and rest[8:9] == b" ":
        head, blank, rest = rest.partition(b"\r\n\r\n")
        found.append(int(head[9:12]))
        length = re.search(rb"(?im)^content-length:[ \t]*(\d+)", head)
        if blank and length is not None:
            rest = rest[int(length.group(1)) :]
        elif blank and re.search(rb"(?im)^transfer-encoding:[ \t]*chunked", head):
            rest = after_chunks(rest)
        else:
            break  # an unsized body runs to the end
    return found


def after_chunks(body: bytes) -> bytes:
    """What follows a chunked body (b"" if it is not all there)."""
    while True:
        size_line, crlf, body = body.partition(b"\r\n")
        if not crlf or not size_line.strip():
            return b""
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body[2:] if body.startswith(b"\r\n") else b""
        body = body[size + 2 :]


TARGETS = [
    b"/v1/models",
    b"//v1/models",
    b"/v1//models",
    b"/./v1/models",
    b"/x/../v1/models",
    b"/v1/./models",
    b"/%76%31/models",
    b"/v1/%6dodels",
    b"/v1%2fmodels",
    b"/V1/models",
    b"/v1/models/",
    b"/v1;x=1/models",
    b"/v1/models;a=b",
    b"/v1/models?x=/../../",
    b"http://evil.example/v1/models",
    b"http://127.0.0.1/v1/models",
    b"/llm/v1/models",
    b"/llm//v1/models",
    b"/whoami",
    b"//whoami",
    b"/whoami/",
]


@pytest.mark.parametrize("target", TARGETS, ids=[t.decode() for t in TARGETS])
@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
def test_no_path_trick_reaches_the_engine_or_a_guarded_view(
    face_gateway, fake_requests, target, version
):
    request = (
        b"GET " + target + b" " + version + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    answer = raw(face_gateway, request)
    codes = statuses(answer)
    assert codes and codes[0] in (400, 401, 403, 404), answer[:300]
    assert b'"key"' not in answer  # whoami never answered
    assert fake_requests() == []


@pytest.mark.parametrize(
    "host", [b"localhost/health?", b"127.0.0.1/v1/models#", b"evil.example", b"127.0.0.1:1@evil"]
)
def test_host_header_games(face_gateway, fake_requests, host):
    answer = raw(
        face_gateway, b"GET /v1/models HTTP/1.1\r\nConnection: close\r\nHost: " + host + b"\r\n\r\n"
    )
    assert statuses(answer)[0] in (400, 401, 403, 404)
    assert fake_requests() == []


def test_pipelining_checks_every_request(face_gateway, fake_requests, api_key):
    """Requests pipelined behind a keyed one are each checked: the first is served, the two
    without a key get their 401, in order, and never reach the engine."""
    path = face_gateway.api_path.encode() + b"/models"
    keyed = (
        b"GET "
        + path
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + api_key.encode()
        + b"\r\n\r\n"
    )
    bare = b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answer = raw(face_gateway, keyed + bare + bare, answers=3)
    codes = statuses(answer)
    assert codes == [200, 401, 401], codes
    assert len(fake_requests()) == 1


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 4\r\nContent-Length: 40\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
    ],
    ids=["CL+TE", "duplicate CL", "duplicate TE"],
)
def test_smuggling_gets_nothing_through(face_gateway, fake_requests, headers):
    smuggled = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n" + body
    )
    answer = raw(face_gateway, request)
    assert all(code in (400, 401, 403, 404, 411, 413) for code in statuses(answer)), answer[:400]
    assert fake_requests() == []


def test_no_header_injection_through_the_request_id(face_gateway):
    for request_id in (b"abc%0d%0aX-Injected: 1", b"abc\x0bX-Injected: 1", b"abc X-Injected: 1"):
        answer = raw(
            face_gateway,
            b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: "
            + request_id
            + b"\r\n\r\n",
        )
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert b"\r\nx-injected:" not in head


def test_a_websocket_upgrade_without_a_key_is_refused_before_accept(face_gateway, fake_requests):
    for path in (b"/v1/realtime", b"//v1/realtime", b"/v1/./realtime"):
        answer = raw(
            face_gateway,
            b"GET "
            + path
            + b"?model=fake-model HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n",
        )
        assert statuses(answer)[0] in (400, 403, 404), answer[:300]
    assert fake_requests() == []
