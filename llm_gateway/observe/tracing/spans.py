"""The observer that traces each request: a SERVER span for the gateway request (continuing
the client's ``traceparent``, or joining the span a Django instrumentation already opened),
and in it one CLIENT span per try on a replica, named ``{operation} {model}``, whose context
is the ``traceparent`` the engine receives: the engine's own spans are its children. A
failover leaves one failed CLIENT span per replica tried. A realtime session is one span.

Everything here runs on the event loop between two chunks and only records: the spans are
built when the request ends (``recorder``) and exported by the SDK's batching thread."""

from __future__ import annotations

import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind

from ...core import Observer, Tap
from ...core.record import RequestRecord
from ...core.request import GatewayRequest
from ...errors import GatewayError
from ...upstream.client import Upstream
from . import names
from .answer import AnswerReader, input_messages
from .instruments import Instruments
from .recorder import Recorder

PARAMETERS = (
    ("max_tokens", names.REQUEST_MAX_TOKENS),
    ("max_completion_tokens", names.REQUEST_MAX_TOKENS),
    ("max_output_tokens", names.REQUEST_MAX_TOKENS),
    ("temperature", names.REQUEST_TEMPERATURE),
    ("top_p", names.REQUEST_TOP_P),
)


class GenAITracing(Observer):
    """Begins a ``RequestTrace`` per request; ``recorder`` None: the metrics alone."""

    def __init__(
        self,
        recorder: Recorder | None,
        instruments: Instruments | None = None,
        capture_content: bool = False,
        w3c: bool = False,
    ) -> None:
        self.recorder = recorder
        self.instruments = instruments
        self.capture_content = capture_content
        self.w3c = w3c  # the propagators are W3C's alone: the headers are written here
        self._addresses: dict[str, tuple[str, int]] = {}
        # The headers the configured propagators read (traceparent, tracestate, baggage).
        fields = propagate.get_global_textmap().fields
        self.fields = frozenset(field.lower().encode("latin-1") for field in fields)

    def begin(self, request: GatewayRequest, record: RequestRecord) -> Tap | None:
        return RequestTrace(self, request, record)

    def address(self, upstream: Upstream) -> tuple[str, int]:
        """A replica's host and port (``server.address``, ``server.port``), parsed once."""
        found = self._addresses.get(upstream.url)
        if found is None:
            parts = urlsplit(upstream.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            found = self._addresses[upstream.url] = (parts.hostname or "", port)
        return found


class Try:
    """One try on a replica: its span's context, start, attributes and failure."""

    __slots__ = ("context", "name", "start", "end", "attributes", "failed")

    def __init__(self, context: SpanContext, name: str, attributes: dict[str, Any]) -> None:
        self.context = context
        self.name = name
        self.start = time.time_ns()
        self.end = 0
        self.attributes = attributes
        self.failed = ""  # error.type, once it failed


class RequestTrace(Tap):
    __slots__ = (
        "tracing",
        "request",
        "operation",
        "context",
        "parent",
        "kind",
        "attributes",
        "tries",
        "upstream",
        "first_chunk",
        "reader",
        "tail",
    )

    def __init__(self, tracing: GenAITracing, request: GatewayRequest, record: RequestRecord):
        self.tracing = tracing
        self.request = request
        self.operation = names.OPERATIONS.get(request.path)
        self.context: SpanContext | None = None  # the SERVER span's (None: not traced)
        self.parent: SpanContext | None = None
        self.kind = SpanKind.SERVER
        self.attributes: dict[str, Any] = {}
        self.tries: list[Try] = []
        self.upstream: Upstream | None = None
        self.first_chunk: float | None = None  # perf_counter of the first chunk sent
        self.reader = AnswerReader(False, tracing.capture_content)
        self.tail: deque[bytes] | None = None  # the reader's, once the answer is a stream
        recorder = tracing.recorder
        if recorder is None:
            return
        context = otel_context.get_current()
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid:  # inside a framework's own SERVER span: a step of it
            self.kind = SpanKind.INTERNAL
        else:  # the client's traceparent (a new trace without one)
            fields = tracing.fields
            carrier = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers if k in fields
            }
            context = propagate.extract(carrier) if carrier else Context()
            parent = trace.get_current_span(context).get_span_context()
        self.parent = parent if parent.is_valid else None
        self.context = recorder.trace_of(self.parent, context, request.path)
        if not self.context.trace_flags.sampled:
            return  # the sampler said no: its context goes on, nothing is described
        attributes = self.attributes
        attributes[names.HTTP_REQUEST_METHOD] = request.method
        attributes[names.URL_PATH] = request.path
        attributes[names.GATEWAY_REQUEST_ID] = request.request_id
        if request.client:
            attributes[names.CLIENT_ADDRESS] = request.client
        if (key := request.api_key) is not None:
            attributes[names.GATEWAY_KEY_NAME] = key.name
            if key.id is not None:
                attributes[names.GATEWAY_KEY_ID] = key.id
            if key.team:
                attributes[names.GATEWAY_TEAM] = key.team
        if self.operation is not None:
            attributes[names.OPERATION_NAME] = self.operation
            if record.model:
                attributes[names.REQUEST_MODEL] = record.model

    # --- each try on a replica ----------------------------------------------------------
    def attempt(self, upstream: Upstream) -> list[tuple[str, str]]:
        self.upstream = upstream
        recorder, server = self.tracing.recorder, self.context
        if recorder is None or server is None:
            return []
        if self.tries and not self.tries[-1].end:
            self.tries[-1].end = time.time_ns()
        if not server.trace_flags.sampled:  # the engine still gets the (unsampled) context
            attempt = Try(recorder.child_of(server), "", {})
            self.tries.append(attempt)
            return context_headers(attempt.context, self.tracing.w3c)
        request = self.request
        host, port = self.tracing.address(upstream)
        attributes: dict[str, Any] = {
            names.SERVER_ADDRESS: host,
            names.SERVER_PORT: port,
            names.GATEWAY_REPLICA: upstream.name,
            names.GATEWAY_ATTEMPT: len(self.tries) + 1,
        }
        model = request.payload.get("model") if request.payload else None
        if self.operation is not None:
            name = f"{self.operation} {model}" if isinstance(model, str) else self.operation
            attributes[names.OPERATION_NAME] = self.operation
            attributes[names.PROVIDER_NAME] = upstream.provider_name
            self._request_attributes(attributes)
        else:
            name = f"{request.method} {request.path}"
        attempt = Try(recorder.child_of(server), name, attributes)
        self.tries.append(attempt)
        return context_headers(attempt.context, self.tracing.w3c)

    def _request_attributes(self, out: dict[str, Any]) -> None:
        payload = self.request.payload or {}
        if isinstance(model := payload.get("model"), str):
            out[names.REQUEST_MODEL] = model
        for field, name in PARAMETERS:
            value = payload.get(field)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[name] = value
        out[names.REQUEST_STREAM] = payload.get("stream") is True
        if self.tracing.capture_content:
            messages, system = input_messages(payload)
            if messages is not None:
                out[names.INPUT_MESSAGES] = messages
            if system is not None:
                out[names.SYSTEM_INSTRUCTIONS] = system

    def attempted(self, status: int, error: GatewayError | None) -> None:
        if not self.tries:
            return
        attempt = self.tries[-1]
        if status:
            attempt.attributes[names.HTTP_RESPONSE_STATUS_CODE] = status
        if error is not None:
            attempt.failed = error.code or type(error).__name__
            attempt.end = time.time_ns()
        elif status >= 400:
            attempt.failed = str(status)

    # --- the answer -----------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if (tail := self.tail) is not None:  # a stream after its first chunk: kept, no more
            tail.append(data)
            return
        reader = self.reader
        first = self.first_chunk is None
        if first:
            self.first_chunk = time.perf_counter()
            reader.stream = data.startswith((b"data:", b"event:", b":"))
            if reader.stream and not reader.capture:
                self.tail = reader.tail
        reader.feed(data, first)

    def finish(self, record: RequestRecord) -> None:
        end = int((record.created + (record.duration or record.since_start())) * 1e9)
        ending = record.ending or ""
        broken = ending.startswith("error:") or ending == "upstream_closed"
        last = self.tries[-1] if self.tries else None
        failed = (last.failed if last is not None else "") or (
            ending.removeprefix("error:") if broken else ""
        )
        recorder, context = self.tracing.recorder, self.context
        if recorder is not None and context is not None and context.trace_flags.sampled:
            if last is not None:
                last.failed = failed
                self._describe(last.attributes, record)
            elif self.operation is not None:
                self._describe(self.attributes, record)  # a realtime session, or refused first
            for attempt in self.tries:
                if attempt.failed:
                    attempt.attributes[names.ERROR_TYPE] = attempt.failed
                recorder.record(
                    attempt.name,
                    attempt.context,
                    context,
                    SpanKind.CLIENT,
                    attempt.attributes,
                    attempt.start,
                    attempt.end or end,
                    bool(attempt.failed),
                )
            self._record_server(recorder, record, end, failed, broken)
        if self.tracing.instruments is not None and self.operation is not None:
            self._measure(self.tracing.instruments, record, failed)

    def _record_server(
        self, recorder: Recorder, record: RequestRecord, end: int, failed: str, broken: bool
    ) -> None:
        attributes = self.attributes
        attributes[names.GATEWAY_ENDING] = record.ending or ""
        if record.status:
            attributes[names.HTTP_RESPONSE_STATUS_CODE] = record.status
        if record.upstream:
            attributes[names.GATEWAY_REPLICA] = record.upstream
        if record.priority:
            attributes[names.GATEWAY_PRIORITY] = record.priority
            attributes[names.GATEWAY_QUEUE_WAIT] = record.queued
        if record.limited:
            attributes[names.GATEWAY_LIMITED] = record.limited
        if record.cost_micro is not None:
            attributes[names.GATEWAY_COST] = record.cost_micro / 1_000_000
        # A refusal (4xx) is the client's error, not the server's (HTTP's conventions).
        server_failed = record.status >= 500 or (broken and record.status < 400)
        if server_failed:
            attributes[names.ERROR_TYPE] = failed or str(record.status)
        assert self.context is not None
        start = int(record.created * 1e9)
        name = f"{self.request.method} {self.request.path}"
        recorder.record(
            name, self.context, self.parent, self.kind, attributes, start, end, server_failed
        )

    def _describe(self, attributes: dict[str, Any], record: RequestRecord) -> None:
        """The answer and its usage, on the span of the try that answered."""
        reader = self.reader
        reader.ended()
        if reader.id:
            attributes[names.RESPONSE_ID] = reader.id
        if reader.model:
            attributes[names.RESPONSE_MODEL] = reader.model
        if reader.finish_reasons:
            attributes[names.RESPONSE_FINISH_REASONS] = reader.finish_reasons
        if record.prompt_tokens is not None:
            attributes[names.USAGE_INPUT_TOKENS] = record.prompt_tokens
        if record.completion_tokens is not None:
            attributes[names.USAGE_OUTPUT_TOKENS] = record.completion_tokens
        if record.cached_tokens is not None:
            attributes[names.USAGE_CACHE_READ_INPUT_TOKENS] = record.cached_tokens
        if record.usage_source:
            attributes[names.GATEWAY_USAGE_SOURCE] = record.usage_source
        if self.first_chunk is not None:
            attributes[names.RESPONSE_TIME_TO_FIRST_CHUNK] = self.first_chunk - record.started
        attributes[names.GATEWAY_ENDING] = record.ending or ""
        if reader.capture and reader.texts:
            attributes[names.OUTPUT_MESSAGES] = reader.output_messages()

    def _measure(self, instruments: Instruments, record: RequestRecord, failed: str) -> None:
        attributes: dict[str, Any] = {names.OPERATION_NAME: self.operation}
        if record.model:
            attributes[names.REQUEST_MODEL] = record.model
        if self.reader.model:
            attributes[names.RESPONSE_MODEL] = self.reader.model
        if (upstream := self.upstream) is not None:
            host, port = self.tracing.address(upstream)
            attributes[names.PROVIDER_NAME] = upstream.provider_name
            attributes[names.SERVER_ADDRESS] = host
            attributes[names.SERVER_PORT] = port
        duration = record.duration or record.since_start()
        if failed:
            instruments.duration.record(duration, {**attributes, names.ERROR_TYPE: failed})
            return
        instruments.duration.record(duration, attributes)
        if record.prompt_tokens is not None:
            typed = {**attributes, names.TOKEN_TYPE: names.TOKEN_INPUT}
            instruments.token_usage.record(record.prompt_tokens, typed)
        if record.completion_tokens is not None:
            typed = {**attributes, names.TOKEN_TYPE: names.TOKEN_OUTPUT}
            instruments.token_usage.record(record.completion_tokens, typed)
        if record.ttft is not None:
            instruments.time_to_first_token.record(record.ttft, attributes)
            if record.completion_tokens and record.completion_tokens > 1:
                per_token = max(duration - record.ttft, 0.0) / (record.completion_tokens - 1)
                instruments.time_per_output_token.record(per_token, attributes)


def context_headers(context: SpanContext, w3c: bool) -> list[tuple[str, str]]:
    """A try's context as the configured propagators write it. With W3C's alone (the
    default), written here: ``propagate.inject`` cost 2.4% of a traced request's CPU
    (py-spy), for the same headers (a test holds them equal). The client's ``baggage``
    header goes to the engine as it came."""
    if w3c:
        flags = context.trace_flags
        headers = [
            ("traceparent", f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}")
        ]
        if context.trace_state:
            headers.append(("tracestate", context.trace_state.to_header()))
        return headers
    carrier: dict[str, str] = {}
    propagate.inject(carrier, trace.set_span_in_context(NonRecordingSpan(context)))
    return list(carrier.items())
