"""The relay core alone, against an in-process fake engine (a real aiohttp server on loopback)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from llm_gateway.core import (
    Admission,
    GatewayRequest,
    Observer,
    Policy,
    Principal,
    Relay,
    RelayOptions,
    Reply,
    RequestRecord,
    Tap,
)
from llm_gateway.errors import AuthenticationFailed, GatewayError, InvalidRequestError
from llm_gateway.observe.response_log import ResponseLog
from llm_gateway.upstream.client import Upstream
from llm_gateway.upstream.pool import UpstreamPool

KEY = Principal(1, "k", "abcd1234")


def event(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    payload = {"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(payload)}\n\n".encode()


class Engine:
    """An engine whose answers the test chooses; it records how each request ended."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self.handler: Callable[[web.Request], Any] = self.stream

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            await response.write(event(None))
            for word in ("Hel", "lo"):
                await response.write(event(word))
            await response.write(event(None, "stop") + b"data: [DONE]\n\n")
            await response.write_eof()
        finally:
            self.closed.set()
        return response

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            {
                "path": request.path_qs,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": await request.read(),
            }
        )
        try:
            return await self.handler(request)
        finally:
            self.closed.set()


async def with_engine(test: Callable[[Engine, Relay], Any], **relay: Any) -> None:
    engine = Engine()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", engine.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    pool = UpstreamPool([Upstream(f"http://127.0.0.1:{port}/v1", "sk-upstream")])
    try:
        await test(engine, Relay(pool, **relay))
    finally:
        await pool.aclose()
        await runner.cleanup()


CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'


def request(path: str = "/chat/completions", body: bytes = CHAT, **kw: Any):
    values = {
        "method": "POST",
        "path": path,
        "query": b"",
        "headers": [(b"authorization", b"Bearer sk-client"), (b"x-custom", b"kept")],
        "body": body,
        "request_id": "rid-1",
        "api_key": KEY,
        "client": "127.0.0.9",
    }
    values.update(kw)
    return GatewayRequest(**values)


async def drain(reply: Reply) -> bytes:
    try:
        if reply.content is not None:
            return reply.content
        assert reply.chunks is not None
        return b"".join([chunk async for chunk in reply.chunks])
    finally:
        await reply.aclose()


class Records(Observer):
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.fed: list[bytes] = []

    def begin(self, request: GatewayRequest, record: RequestRecord) -> Tap | None:
        fed = self.fed

        class Keep(Tap):
            def feed(self, data: bytes) -> None:
                fed.append(data)

        return Keep()

    def finish(self, record: RequestRecord) -> None:
        self.records.append(record)


def run(coro: Any) -> None:
    asyncio.run(coro)


def test_stream_reply_and_its_record():
    observer = Records()

    async def test(engine: Engine, relay: Relay) -> None:
        reply = await relay.handle(request())
        assert reply.status == 200 and (b"x-accel-buffering", b"no") in reply.headers
        body = await drain(reply)
        assert body.endswith(b"data: [DONE]\n\n") and b"Hel" in body
        assert b"".join(observer.fed) == body  # taps saw exactly what was sent
        (seen,) = engine.seen
        assert seen["headers"]["authorization"] == "Bearer sk-upstream"  # never the client's
        assert seen["headers"]["x-custom"] == "kept" and seen["headers"]["x-request-id"] == "rid-1"
        (record,) = observer.records
        assert (record.ending, record.stream, record.status, record.model) == (
            "done",
            True,
            200,
            "m",
        )
        assert record.api_key == KEY and record.client == "127.0.0.9"
        assert record.bytes_out == len(body) and record.bytes_in == len(CHAT)
        assert 0 < record.ttfb <= record.ttft <= record.duration  # type: ignore[operator]
        assert relay.pool.upstreams[0].in_flight == 0

    run(with_engine(test, observers=[observer]))


def test_no_key_never_reaches_the_engine_unless_the_gateway_is_open():
    async def test(engine: Engine, relay: Relay) -> None:
        with pytest.raises(AuthenticationFailed):
            await relay.handle(request(api_key=None))
        assert engine.seen == []
        open_relay = Relay(relay.pool, options=RelayOptions(allow_unauthenticated=True))
        await drain(await open_relay.handle(request(api_key=None)))
        assert len(engine.seen) == 1

    run(with_engine(test))


def test_policy_refuses_before_the_upstream_and_admissions_settle():
    settled: list[str | None] = []

    class Refuse(Policy):
        async def admit(self, request: GatewayRequest, record: RequestRecord) -> Admission | None:
            if request.payload and request.payload.get("model") == "forbidden":
                raise GatewayError("no", status=404, code="model_not_found")

            class Hold(Admission):
                headers = [(b"x-held", b"1")]

                def settle(self, record: RequestRecord) -> None:
                    settled.append(record.ending)

            return Hold()

    observer = Records()

    async def test(engine: Engine, relay: Relay) -> None:
        with pytest.raises(GatewayError) as info:
            await relay.handle(request(body=CHAT.replace(b'"m"', b'"forbidden"', 1)))
        assert info.value.code == "model_not_found" and engine.seen == []
        assert observer.records[-1].ending == "error:model_not_found"
        reply = await relay.handle(request())
        assert (b"x-held", b"1") in reply.headers
        await drain(reply)
        assert settled == ["done"]

    run(with_engine(test, policies=[Refuse()], observers=[observer]))


def test_invalid_json_is_refused_before_the_engine():
    async def test(engine: Engine, relay: Relay) -> None:
        with pytest.raises(InvalidRequestError):
            await relay.handle(request(body=b"[1]"))
        assert engine.seen == []

    run(with_engine(test))


def test_client_leaving_mid_stream_closes_the_engine_request_at_once():
    observer = Records()

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for _ in range(1000):
            await response.write(event("x"))
            await asyncio.sleep(0.01)
        return response

    async def test(engine: Engine, relay: Relay) -> None:
        engine.handler = slow
        reply = await relay.handle(request())
        assert reply.chunks is not None
        await reply.chunks.__anext__()
        await reply.aclose()  # what a face does when its client left
        await asyncio.wait_for(engine.closed.wait(), 1.0)
        assert observer.records[0].ending == "client_disconnected"
        assert relay.pool.upstreams[0].in_flight == 0

    run(with_engine(test, observers=[observer]))


def test_client_leaving_after_done_is_a_done_stream(caplog):
    """The engine's final empty chunk never comes, but [DONE] went out: the stream was done."""

    async def no_end(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(event("Hi", "stop") + b"data: [DONE]\n\n")
        await asyncio.sleep(3600)
        return response

    async def test(engine: Engine, relay: Relay) -> None:
        engine.handler = no_end
        reply = await relay.handle(request())
        task = asyncio.ensure_future(drain(reply))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.INFO, "llm_gateway.responses"):
        run(with_engine(test, observers=[ResponseLog()]))
    message = [r.getMessage() for r in caplog.records][-1]
    assert message.startswith("stream end=done ") and message.endswith("content=Hi")


def test_broken_stream_ends_with_one_error_event():
    observer = Records()

    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(event("a") + b'data: {"half')
        assert request.transport is not None
        request.transport.close()
        return response

    async def test(engine: Engine, relay: Relay) -> None:
        engine.handler = broken
        body = await drain(await relay.handle(request()))
        events = body.split(b"\n\n")
        assert events[0] == event("a")[:-2] and b'"half' not in body
        assert json.loads(events[1][6:])["error"]["code"] == "upstream_error"
        assert observer.records[0].ending == "error:upstream_error"

    run(with_engine(test, observers=[observer]))


def test_engine_error_answer_is_a_gateway_error_before_the_first_byte():
    async def error(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"message": "bad", "type": "x", "code": "c"}}, status=400
        )

    async def test(engine: Engine, relay: Relay) -> None:
        engine.handler = error
        with pytest.raises(GatewayError) as info:
            await relay.handle(request())
        assert info.value.status == 400 and info.value.body()["error"]["code"] == "c"

    run(with_engine(test))


def test_large_and_unsized_bodies_stream_through():
    big = bytes(range(256)) * 8192  # 2 MiB

    async def audio(request: web.Request) -> web.StreamResponse:
        if request.query.get("sized"):
            return web.Response(body=big, content_type="audio/wav")
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        await response.prepare(request)
        for i in range(0, len(big), 65536):
            await response.write(big[i : i + 65536])
        return response

    async def test(engine: Engine, relay: Relay) -> None:
        engine.handler = audio
        for query in (b"sized=1", b""):
            reply = await relay.handle(request("/audio/speech", query=query, method="GET"))
            assert reply.content is None and reply.chunks is not None  # not read whole
            assert await drain(reply) == big
            lengths = [v for n, v in reply.headers if n == b"content-length"]
            assert lengths == ([str(len(big)).encode()] if query else [])

    run(with_engine(test))


def test_an_observer_that_fails_breaks_nothing(caplog):
    class Broken(Observer):
        def finish(self, record: RequestRecord) -> None:
            raise RuntimeError("boom")

    async def test(engine: Engine, relay: Relay) -> None:
        assert (await drain(await relay.handle(request()))).endswith(b"[DONE]\n\n")

    with caplog.at_level(logging.ERROR):
        run(with_engine(test, observers=[Broken()]))
    assert any("failed on request rid-1" in r.getMessage() for r in caplog.records)


async def _unused() -> AsyncIterator[bytes]:  # keeps mypy's view of AsyncIterator imported
    yield b""
