"""One relayed HTTP request: open it (parse, check, ask for usage, admit, send), then reply
with the whole answer or its chunks as they come, and count what it used.

Before the first byte a failure is a ``GatewayError`` (the face renders it); after it, a
failure becomes the final SSE error event of the stream. Stream chunks go out as they arrive,
whole events only, so that an error event added after a broken upstream is never glued onto
half an event. When the face cancels (the client left), the upstream answer is closed at
once, so the engine stops generating (LiteLLM keeps forwarding such requests). Usage a client
asked for and the engine did not send is added from the meter (``fill``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

from ..errors import AuthenticationFailed, GatewayError, InvalidRequestError
from ..sse.boundary import DONE_EVENT, EventBoundary, ends_with_done
from ..sse.decoder import encode_event
from ..upstream.client import Answer
from ..upstream.errors import MAX_ERROR_BODY, Stage, error_answer
from ..upstream.tokenizer import Tokenizer
from . import headers as header_policy
from .endpoints import (
    JSON_ENDPOINTS,
    MESSAGES,
    MODELS,
    OPENAI_ENDPOINTS,
    RESPONSES,
    STREAMED_ENDPOINTS,
)
from .fill import (
    COMPLETED,
    asked_for_usage,
    body_usage,
    completed_lacks_usage,
    counted_usage,
    split_at_done,
    usage_event,
    with_body_usage,
    with_completed_usage,
)
from .lifecycle import Lifecycle, Parts
from .options import RelayOptions
from .request import CLIENT_STALL, GatewayRequest, Reply, Stall
from .usage import (
    StreamMeter,
    Usage,
    ask_for_usage,
    prompt_text_length,
    strip_usage_fields,
    whole_body_usage,
    withhold_usage_events,
)
from .validate import check_payload

# Bodies up to this size (with a Content-Length) are read whole; larger ones, or of unknown
# length (audio, file contents), stream through as they come.
WHOLE_BODY_LIMIT = 1024 * 1024
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


def key_required(method: str, options: RelayOptions) -> bool:
    """Whether a request must carry a key to reach an engine: the one rule every face's
    fail-closed check asks (a CORS preflight never reaches an engine, so it needs none)."""
    return method != "OPTIONS" and not options.allow_unauthenticated


class RelayParts(Parts, Protocol):
    """What an exchange takes of its relay (``relay.Relay``): a lifecycle's parts, and the
    set of answers being relayed (the drain's deadline ends them)."""

    streams: set[Exchange]


class Exchange(Lifecycle):
    """One relayed HTTP request: its lifecycle, and the answer on its way to the client."""

    __slots__ = (
        "streams",
        "answer",
        "meter",
        "withhold",
        "strip",
        "fill",
        "usage",
        "interrupted",
        "stall",
    )

    def __init__(self, relay: RelayParts, request: GatewayRequest) -> None:
        super().__init__(relay, request)
        self.streams = relay.streams
        self.answer: Answer | None = None
        self.meter: StreamMeter | None = None
        self.withhold = False  # the gateway asked for the usage event: the client never sees it
        self.strip = False  # ... and for usage in every chunk: stripped before the client
        # The usage the client asked for, if the engine does not send it: "chat" (a usage
        # chunk before [DONE]), "responses" (in response.completed), or None.
        self.fill: str | None = None
        self.usage: Usage | None = None  # of a whole answer, or as added to a stream
        self.interrupted: GatewayError | None = None  # why the gateway cut the answer off
        self.stall = Stall()
        CLIENT_STALL.set(self.stall)  # the server marks it if it cuts a stalled client

    async def open(self) -> Reply:
        request, record, options = self.request, self.record, self.relay.options
        if request.method == "OPTIONS":
            # A CORS preflight carries no key, so it never goes to the engine: answered here.
            record.status = 204
            return Reply(204, list(PREFLIGHT_HEADERS), content=b"", on_close=self.close)
        if request.api_key is None and key_required(request.method, options):
            # Fail closed: whatever the prefixes say, no key, no engine.
            raise AuthenticationFailed(
                "Missing API key: send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        body = request.body
        if request.method == "POST" and request.path in JSON_ENDPOINTS:
            payload = request.payload = parse_payload(body)
            check_payload(request.path, payload)  # what OpenAI refuses never reaches an engine
            model = payload.get("model")
            record.model = model if isinstance(model, str) else None
            if options.usage and request.path in STREAMED_ENDPOINTS:
                if asked_for_usage(payload):
                    self.fill = "chat"
                asked = ask_for_usage(body, payload, options.continuous_usage)
                if asked is not None:
                    body, self.withhold, self.strip = asked.body, asked.withhold, asked.strip
            elif options.usage and request.path == RESPONSES:
                self.fill = "responses"
        self.observe()  # a refusal from here on is observed too (its span, its metrics)
        self.dispatch.prepare(request, record)
        await self.admit()
        dispatch = self.dispatch
        if request.method == "GET" and request.path == MODELS and dispatch.replicated:
            content = await dispatch.listing(request)
            extra = self.admission_headers()
            return await self._whole(200, [(b"content-type", b"application/json"), *extra], content)
        self.answer = answer = await dispatch.send(request, record, body)
        record.status = answer.status
        if answer.status >= 400:
            raise await self._error_answer(answer)
        extra = self.admission_headers()
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
            return await self._whole(answer.status, out, content)
        if length is not None:
            out.append((b"content-length", str(length).encode()))
        return Reply(answer.status, out, chunks=self._passthrough(answer), on_close=self.close)

    async def _whole(self, status: int, out: list[tuple[bytes, bytes]], content: bytes) -> Reply:
        """A whole answer, as the admissions let the client see it (with usage, if the
        engine gave none)."""
        request, record = self.request, self.record
        for admission in self.admissions:
            if admission.rewrites:
                content = admission.rewrite(request, content)
        if self.relay.options.usage and request.payload is not None and status == 200:
            self.usage = usage = whole_body_usage(content, prompt_text_length(request.payload))
            if usage is not None and usage.source != "engine" and request.path in OPENAI_ENDPOINTS:
                tokenizer = self._tokenizer()
                self.usage = usage = await body_usage(tokenizer, request, content, usage)
                content = with_body_usage(content, request.path, usage)
        record.ttfb = record.since_start()
        record.bytes_out = len(content)
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
        fill = self.fill
        boundary = EventBoundary()
        meter: StreamMeter | None = StreamMeter()
        if self.relay.options.usage:
            self.meter = meter
        last_sent = b""
        error: GatewayError | None = None
        self.streams.add(self)
        try:
            try:
                async for chunk in answer.chunks():
                    ready = boundary.feed(chunk)
                    if not ready:
                        continue
                    metered, first_token = ready, False
                    if fill is not None and meter is not None:
                        ready, metered, first_token = await self._filled(ready, meter)
                    sent = withhold_usage_events(ready) if withhold else ready
                    if strip:
                        sent = strip_usage_fields(sent)
                    if sent:
                        if record.ttfb is None:
                            record.ttfb = record.since_start()
                        yield sent
                        record.bytes_out += len(sent)
                    last_sent = ready
                    if meter is not None and (meter.feed(metered) or first_token):
                        record.ttft = record.since_start()
                        if self.meter is None:  # usage off: the first token was all it was for
                            meter = None
                    for tap in taps:
                        tap.feed(sent)
            except GatewayError as exc:
                error = self.interrupted or exc
            done = self._ended_whole(last_sent)
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
            if not self.ended:  # closed or cancelled before the end: the client left
                answer.close()
                self.end("done" if self._ended_whole(last_sent) else self._client_left())

    def _ended_whole(self, last_sent: bytes) -> bool:
        """Whether a stream's last bytes end it as its protocol says: OpenAI's ``[DONE]``, or
        the Messages API's ``message_stop`` event."""
        if self.request.path == MESSAGES:
            return b"message_stop" in last_sent[-256:]
        return ends_with_done(last_sent)

    async def _passthrough(self, answer: Answer) -> AsyncIterator[bytes]:
        """A large or unsized body, chunk by chunk (not SSE: a failure can only cut it)."""
        record = self.record
        self.streams.add(self)
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
            if not self.ended:
                answer.close()
                self.end(self._client_left())

    async def _filled(self, ready: bytes, meter: StreamMeter) -> tuple[bytes, bytes, bool]:
        """These whole events as the client gets them (with the usage it asked for, if the
        engine sent none), what the meter has still to read of them, and whether what it
        read here carried the first token."""
        if self.fill == "chat" and DONE_EVENT in ready:
            head, tail = split_at_done(ready)
            if tail:
                first_token = meter.feed(head)
                meter.flush()
                if meter.usage is None:
                    self.usage = await counted_usage(self._tokenizer(), self.request, meter)
                    ready = head + usage_event(meter.head, self.request.path, self.usage) + tail
                return ready, tail, first_token
        elif self.fill == "responses" and COMPLETED in ready and completed_lacks_usage(ready):
            first_token = meter.feed(ready)
            meter.flush()
            self.usage = await counted_usage(self._tokenizer(), self.request, meter)
            return with_completed_usage(ready, self.usage), b"", first_token
        return ready, ready, False

    def _tokenizer(self) -> Tokenizer | None:
        """The engine's own tokenizer, if the replica serving this request has one."""
        lease = self.dispatch.lease
        return lease.upstream.tokenizer if lease is not None else None

    def _client_left(self) -> str:
        """How an answer ended that its client did not take whole: the client left, or the
        server cut it for reading nothing (``request.Stall``)."""
        return "client_stalled" if self.stall.stalled else "client_disconnected"

    def interrupt(self, error: GatewayError) -> None:
        self.interrupted = error
        if self.answer is not None:
            self.answer.close()  # the read in progress fails, and ends the stream with ``error``

    def end(self, ending: str, failed: bool = False) -> bool:
        """An answer the engine broke off counts against its replica (a 5xx status line
        already did, when it came)."""
        broken = ending in BROKEN_ANSWERS and self.answer is not None
        if not super().end(ending, failed or (broken and self.record.status < 500)):
            return False
        self.streams.discard(self)
        return True

    def close(self) -> None:
        """The face is done with the reply: count its tokens, then close the lifecycle."""
        if not self.ended:  # a whole body that was sent (or a reply never iterated)
            if self.record.ttfb is None and self.answer is not None:
                self.answer.close()
            self.end("done" if self.record.ttfb is not None else "client_disconnected")
        self._account()
        super().close()

    def _account(self) -> None:
        """The record's token counts: the engine's usage, else counted or estimated."""
        usage = self.usage
        if usage is None and self.meter is not None and self.record.ttfb is not None:
            usage = self.meter.result(prompt_text_length(self.request.payload))
        if usage is not None:
            record = self.record
            record.prompt_tokens, record.completion_tokens = usage.prompt, usage.completion
            record.cached_tokens, record.usage_source = usage.cached, usage.source
