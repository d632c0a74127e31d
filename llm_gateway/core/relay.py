"""The relay pipeline: admit, open, reply, observe.

``Relay.handle`` takes a ``GatewayRequest`` and returns a ``Reply``. Before the first byte a
failure is a ``GatewayError`` (the face renders it); after it, a failure becomes the final SSE
error event of the stream. Bodies go upstream byte for byte; JSON is parsed only on the
OpenAI endpoints, to refuse a broken body early and to read ``model``. Stream chunks go out as
they arrive, whole events only, so that an error event added after a broken upstream is never
glued onto half an event. When the face cancels (the client left), the upstream answer is
closed at once, so the engine stops generating (LiteLLM keeps forwarding such requests).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..conf import conf
from ..errors import AuthenticationFailed, GatewayError, InvalidRequestError, ServerShuttingDown
from ..sse.boundary import EventBoundary
from ..sse.decoder import encode_event
from ..upstream.answers import MAX_ERROR_BODY, Stage, error_answer
from ..upstream.client import Answer
from ..upstream.pool import UpstreamPool
from . import headers as header_policy
from .dispatch import Dispatch
from .hooks import Admission, Observer, Policy, Tap
from .record import RequestRecord
from .request import GatewayRequest, Reply
from .usage import (
    STREAMED_ENDPOINTS,
    StreamMeter,
    Usage,
    ask_for_usage,
    prompt_text_length,
    strip_usage_fields,
    whole_body_usage,
    withhold_usage_events,
)

logger = logging.getLogger(__name__)

JSON_ENDPOINTS = frozenset({"/chat/completions", "/completions", "/embeddings", "/responses"})
# Bodies up to this size (with a Content-Length) are read whole; larger ones, or of unknown
# length (audio, file contents), stream through as they come.
WHOLE_BODY_LIMIT = 1024 * 1024
DONE_EVENT_END = b"data: [DONE]"
BROKEN_ANSWERS = frozenset({"error:upstream_error", "error:upstream_timeout", "upstream_closed"})
PREFLIGHT_HEADERS = (
    (b"allow", b"GET, POST, PUT, PATCH, DELETE, OPTIONS"),
    (b"content-length", b"0"),
)


def parse_payload(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc.msg}.") from None
    if not isinstance(payload, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return payload


class Relay:
    def __init__(
        self,
        pool: UpstreamPool,
        policies: list[Policy] | None = None,
        observers: list[Observer] | None = None,
    ) -> None:
        self.pool = pool
        self.policies = policies or []
        self.observers = observers or []
        self.accepting = True  # False while the process drains: new requests get 503
        self.streams: set[_Exchange] = set()  # answers being relayed now

    async def handle(self, request: GatewayRequest) -> Reply:
        if not self.accepting:
            # The launcher's drain has Twisted close the connection after it (Connection: close).
            raise ServerShuttingDown(
                "The gateway is shutting down; send the request again (to another process)."
            )
        exchange = _Exchange(self, request)
        try:
            return await exchange.open()
        except GatewayError as exc:
            exc.add_headers([h for admission in exchange.admissions for h in admission.headers])
            exchange.record.status = exc.status
            exchange.end(f"error:{exc.code}")
            exchange.close()
            raise
        except BaseException:  # cancelled: the client left while we waited
            exchange.end("client_disconnected")
            exchange.close()
            raise

    def interrupt(self, error: GatewayError) -> int:
        """End every answer being relayed with ``error`` (the drain's deadline): a stream gets
        it as its final event, and its upstream request is closed. Returns how many."""
        streams = list(self.streams)
        for exchange in streams:
            exchange.interrupt(error)
        return len(streams)


class _Exchange:
    """The state of one request in the core, from arrival to its record."""

    __slots__ = (
        "relay",
        "request",
        "record",
        "taps",
        "admissions",
        "dispatch",
        "answer",
        "meter",
        "withhold",
        "strip",
        "usage",
        "interrupted",
        "_ended",
    )

    def __init__(self, relay: Relay, request: GatewayRequest) -> None:
        self.relay = relay
        self.request = request
        self.record = record = RequestRecord(
            request.request_id, request.method, request.path, request.api_key, request.client
        )
        record.bytes_in = len(request.body)
        self.taps: list[Tap] = []
        self.admissions: list[Admission] = []
        self.dispatch = Dispatch(relay.pool)
        self.answer: Answer | None = None
        self.meter: StreamMeter | None = None
        self.withhold = False  # the gateway asked for the usage event: the client never sees it
        self.strip = False  # ... and for usage in every chunk: stripped before the client
        self.usage: Usage | None = None  # of a whole answer
        self.interrupted: GatewayError | None = None  # why the gateway cut the answer off
        self._ended = False

    async def open(self) -> Reply:
        request, record = self.request, self.record
        if request.method == "OPTIONS":
            # A CORS preflight carries no key, so it never goes to the engine: answered here.
            record.status = 204
            return Reply(204, list(PREFLIGHT_HEADERS), content=b"", on_close=self.close)
        if request.api_key is None and not conf.ALLOW_UNAUTHENTICATED:
            # Fail closed: whatever the prefixes say, no key, no engine.
            raise AuthenticationFailed(
                "Missing API key: send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        body = request.body
        if request.method == "POST" and request.path in JSON_ENDPOINTS:
            payload = request.payload = parse_payload(body)
            model = payload.get("model")
            record.model = model if isinstance(model, str) else None
            if conf.USAGE and request.path in STREAMED_ENDPOINTS:
                asked = ask_for_usage(body, payload, conf.UPSTREAM_CONTINUOUS_USAGE)
                if asked is not None:
                    body, self.withhold, self.strip = asked.body, asked.withhold, asked.strip
        for observer in self.relay.observers:
            if (tap := observer.begin(request, record)) is not None:
                self.taps.append(tap)
        for policy in self.relay.policies:
            if (admission := await policy.admit(request, record)) is not None:
                self.admissions.append(admission)
        dispatch = self.dispatch
        if request.method == "GET" and request.path == "/models" and dispatch.replicated:
            content = await dispatch.listing(request)
            extra = [h for admission in self.admissions for h in admission.headers]
            return self._whole(200, [(b"content-type", b"application/json"), *extra], content)
        self.answer = answer = await dispatch.send(request, record, body)
        record.status = answer.status
        if answer.status >= 400:
            raise await self._error_answer(answer)
        extra = [h for admission in self.admissions for h in admission.headers]
        if answer.is_event_stream:
            record.stream = True
            out = header_policy.from_upstream(answer.raw_headers, stream=True) + extra
            return Reply(answer.status, out, chunks=self._stream(answer), on_close=self.close)
        out = header_policy.from_upstream(answer.raw_headers, stream=False) + extra
        length = answer.content_length
        rewrites = [admission for admission in self.admissions if admission.rewrites]
        if (length is None and rewrites) or (length is not None and length <= WHOLE_BODY_LIMIT):
            content = await answer.read()
            answer.release()
            return self._whole(answer.status, out, content)
        if length is not None:
            out.append((b"content-length", str(length).encode()))
        return Reply(answer.status, out, chunks=self._passthrough(answer), on_close=self.close)

    def _whole(self, status: int, out: list[tuple[bytes, bytes]], content: bytes) -> Reply:
        """A whole answer, as the admissions let the client see it."""
        request, record = self.request, self.record
        for admission in self.admissions:
            if admission.rewrites:
                content = admission.rewrite(request, content)
        record.ttfb = record.since_start()
        record.bytes_out = len(content)
        if conf.USAGE and request.payload is not None and status == 200:
            self.usage = whole_body_usage(content, prompt_text_length(request.payload))
        for tap in self.taps:
            tap.feed(content)
        out.append((b"content-length", b"%d" % len(content)))
        if status == 200 and not record.status:
            record.status = status
        return Reply(status, out, content=content, on_close=self.close)

    async def _error_answer(self, answer: Answer) -> GatewayError:
        try:
            raw = await answer.read(MAX_ERROR_BODY)
        finally:
            answer.close()
        for tap in self.taps:
            tap.feed(raw)
        return error_answer(answer.status, raw, list(answer.raw_headers))

    async def _stream(self, answer: Answer) -> AsyncIterator[bytes]:
        """Each chunk as it arrives; a failure after the start becomes a final error event."""
        record, taps, withhold, strip = self.record, self.taps, self.withhold, self.strip
        boundary = EventBoundary()
        meter: StreamMeter | None = StreamMeter()
        if conf.USAGE:
            self.meter = meter
        last_sent = b""
        error: GatewayError | None = None
        self.relay.streams.add(self)
        try:
            try:
                async for chunk in answer.chunks():
                    ready = boundary.feed(chunk)
                    if not ready:
                        continue
                    sent = withhold_usage_events(ready) if withhold else ready
                    if strip:
                        sent = strip_usage_fields(sent)
                    if sent:
                        if record.ttfb is None:
                            record.ttfb = record.since_start()
                        yield sent
                        record.bytes_out += len(sent)
                    last_sent = ready
                    if meter is not None and meter.feed(ready):
                        record.ttft = record.since_start()
                        if self.meter is None:  # usage off: the first token was all it was for
                            meter = None
                    for tap in taps:
                        tap.feed(sent)
            except GatewayError as exc:
                error = self.interrupted or exc
            done = _ends_with_done(last_sent)
            if error is not None and done:
                boundary.flush()  # the answer was complete; only the connection's end was not
                error = None
            if error is not None:
                # A partial event is dropped so that the error event reaches the client whole.
                answer.close()
                event = encode_event(error.json())
                yield event
                record.bytes_out += len(event)
                self.end(f"error:{error.code}")
                return
            if tail := boundary.flush():
                yield tail
                record.bytes_out += len(tail)
                for tap in taps:
                    tap.feed(tail)
            answer.release()
            self.end("done" if done else "upstream_closed")
        finally:
            if not self._ended:  # closed or cancelled before the end: the client left
                answer.close()
                self.end("done" if _ends_with_done(last_sent) else "client_disconnected")

    async def _passthrough(self, answer: Answer) -> AsyncIterator[bytes]:
        """A large or unsized body, chunk by chunk (not SSE: a failure can only cut it)."""
        record = self.record
        self.relay.streams.add(self)
        try:
            async for chunk in answer.chunks(Stage.ANSWER):
                if record.ttfb is None:
                    record.ttfb = record.since_start()
                yield chunk
                record.bytes_out += len(chunk)
                for tap in self.taps:
                    tap.feed(chunk)
            answer.release()
            self.end("done")
        except GatewayError as exc:
            answer.close()
            self.end(f"error:{exc.code}")
            raise
        finally:
            if not self._ended:
                answer.close()
                self.end("client_disconnected")

    def interrupt(self, error: GatewayError) -> None:
        self.interrupted = error
        if self.answer is not None:
            self.answer.close()  # the read in progress fails, and ends the stream with ``error``

    def end(self, ending: str) -> None:
        """How the request ended; the first call counts. Frees the replica at once."""
        if self._ended:
            return
        self._ended = True
        self.relay.streams.discard(self)
        self.record.ending = ending
        lease = self.dispatch.lease
        if lease is not None:
            # An answer the engine broke off counts against its replica (a 5xx status
            # line already did, when it came).
            broken = ending in BROKEN_ANSWERS and self.answer is not None
            lease.release(failed=broken and self.record.status < 500)

    def close(self) -> None:
        """The face is done with the reply: settle the admissions, tell the observers."""
        if not self._ended:  # a whole body that was sent (or a reply never iterated)
            if self.record.ttfb is None and self.answer is not None:
                self.answer.close()
            self.end("done" if self.record.ttfb is not None else "client_disconnected")
        record = self.record
        record.duration = record.since_start()
        self._account()
        for admission in self.admissions:
            _safely(admission.settle, record)
        for tap in self.taps:
            _safely(tap.finish, record)
        for observer in self.relay.observers:
            _safely(observer.finish, record)
        self.admissions, self.taps = [], []

    def _account(self) -> None:
        """The record's token counts: the engine's usage, else counted or estimated."""
        usage = self.usage
        if usage is None and self.meter is not None and self.record.ttfb is not None:
            usage = self.meter.result(prompt_text_length(self.request.payload))
        if usage is not None:
            record = self.record
            record.prompt_tokens, record.completion_tokens = usage.prompt, usage.completion
            record.cached_tokens, record.usage_source = usage.cached, usage.source


def _ends_with_done(sent: bytes) -> bool:
    """Whether the last bytes sent closed the stream with ``[DONE]``: the answer was whole."""
    return sent.rstrip(b"\r\n").endswith(DONE_EVENT_END)


def _safely(function: Any, record: RequestRecord) -> None:
    """An observer's or policy's failure is logged; it never breaks a request."""
    try:
        function(record)
    except Exception:
        logger.exception("%r failed on request %s", function, record.request_id)
