"""The observer that traces each request: a SERVER span for the gateway request (continuing
the client's ``traceparent``, or joining the span a Django instrumentation already opened),
and in it one CLIENT span per try on a replica, named ``{operation} {model}``, whose context
is the ``traceparent`` the engine receives: the engine's own spans are its children. A
failover leaves one failed CLIENT span per replica tried. A realtime session is one span.

Everything here runs on the event loop between two chunks and only records: spans are
exported by the SDK's batching thread (``pipeline``)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ...core import Observer, Tap
from ...core.record import RequestRecord
from ...core.request import GatewayRequest
from ...errors import GatewayError
from ...upstream.client import Upstream
from . import names
from .answer import AnswerReader, input_messages
from .instruments import Instruments

PARAMETERS = (
    ("max_tokens", names.REQUEST_MAX_TOKENS),
    ("max_completion_tokens", names.REQUEST_MAX_TOKENS),
    ("max_output_tokens", names.REQUEST_MAX_TOKENS),
    ("temperature", names.REQUEST_TEMPERATURE),
    ("top_p", names.REQUEST_TOP_P),
)


class GenAITracing(Observer):
    """Begins a ``RequestTrace`` per request; ``tracer`` None: the metrics alone."""

    def __init__(
        self,
        tracer: trace.Tracer | None,
        instruments: Instruments | None = None,
        capture_content: bool = False,
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.capture_content = capture_content
        self._addresses: dict[str, tuple[str, int]] = {}

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


class RequestTrace(Tap):
    __slots__ = (
        "tracing",
        "request",
        "operation",
        "server",
        "client",
        "tries",
        "upstream",
        "first_chunk",
        "reader",
        "failed",
    )

    def __init__(self, tracing: GenAITracing, request: GatewayRequest, record: RequestRecord):
        self.tracing = tracing
        self.request = request
        self.operation = names.OPERATIONS.get(request.path)
        self.server: Span | None = None
        self.client: Span | None = None  # the try in progress (or the last one)
        self.tries = 0
        self.upstream: Upstream | None = None
        self.first_chunk: float | None = None  # seconds after the request's start
        self.failed = ""  # error.type of the try in progress, once it failed
        self.reader = AnswerReader(False, tracing.capture_content)
        tracer = tracing.tracer
        if tracer is None:
            return
        parent = otel_context.get_current()
        joined = trace.get_current_span(parent).get_span_context().is_valid
        if not joined:  # the client's traceparent (a new trace without one)
            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers}
            parent = propagate.extract(carrier)
        attributes: dict[str, Any] = {
            names.HTTP_REQUEST_METHOD: request.method,
            names.URL_PATH: request.path,
            names.GATEWAY_REQUEST_ID: request.request_id,
        }
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
        self.server = tracer.start_span(
            f"{request.method} {request.path}",
            parent,
            # Inside a framework's own SERVER span, the gateway's is a step of it.
            SpanKind.INTERNAL if joined else SpanKind.SERVER,
            attributes,
            start_time=int(record.created * 1e9),
        )

    # --- each try on a replica ----------------------------------------------------------
    def attempt(self, upstream: Upstream) -> list[tuple[str, str]]:
        self._end_try()
        self.tries += 1
        self.upstream = upstream
        self.failed = ""
        tracer = self.tracing.tracer
        if tracer is None or self.server is None:
            return []
        request = self.request
        host, port = self.tracing.address(upstream)
        attributes: dict[str, Any] = {
            names.SERVER_ADDRESS: host,
            names.SERVER_PORT: port,
            names.GATEWAY_REPLICA: upstream.name,
            names.GATEWAY_ATTEMPT: self.tries,
        }
        model = request.payload.get("model") if request.payload else None
        if self.operation is not None:
            name = f"{self.operation} {model}" if isinstance(model, str) else self.operation
            attributes[names.OPERATION_NAME] = self.operation
            attributes[names.PROVIDER_NAME] = upstream.provider_name
            attributes.update(self._request_attributes())
        else:
            name = f"{request.method} {request.path}"
        self.client = span = tracer.start_span(
            name, trace.set_span_in_context(self.server), SpanKind.CLIENT, attributes
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, trace.set_span_in_context(span))
        return list(carrier.items())

    def _request_attributes(self) -> dict[str, Any]:
        payload = self.request.payload or {}
        out: dict[str, Any] = {}
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
        return out

    def attempted(self, status: int, error: GatewayError | None) -> None:
        span = self.client
        if status and span is not None:
            span.set_attribute(names.HTTP_RESPONSE_STATUS_CODE, status)
        if error is not None:
            self.failed = error.code or type(error).__name__
        elif status >= 400:
            self.failed = str(status)

    def _end_try(self, end_time: int | None = None) -> None:
        span, self.client = self.client, None
        if span is None:
            return
        if self.failed:
            span.set_attribute(names.ERROR_TYPE, self.failed)
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time)

    # --- the answer -----------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        first = self.first_chunk is None
        if first:
            self.first_chunk = time.perf_counter()
            self.reader.stream = data.startswith((b"data:", b"event:", b":"))
        self.reader.feed(data, first)

    def finish(self, record: RequestRecord) -> None:
        end = int((record.created + (record.duration or record.since_start())) * 1e9)
        ending = record.ending or ""
        broken = ending.startswith("error:") or ending == "upstream_closed"
        if broken:
            self.failed = self.failed or ending.removeprefix("error:")
        if self.client is not None:
            self._describe(self.client, record)
        elif self.server is not None and self.operation is not None and self.tries == 0:
            self._describe(self.server, record)  # a realtime session, or refused before a try
        self._end_try(end)
        if (server := self.server) is not None:
            server.set_attribute(names.GATEWAY_ENDING, ending)
            if record.status:
                server.set_attribute(names.HTTP_RESPONSE_STATUS_CODE, record.status)
            if record.upstream:
                server.set_attribute(names.GATEWAY_REPLICA, record.upstream)
            if record.priority:
                server.set_attribute(names.GATEWAY_PRIORITY, record.priority)
                server.set_attribute(names.GATEWAY_QUEUE_WAIT, record.queued)
            if record.limited:
                server.set_attribute(names.GATEWAY_LIMITED, record.limited)
            if record.cost_micro is not None:
                server.set_attribute(names.GATEWAY_COST, record.cost_micro / 1_000_000)
            # A refusal (4xx) is the client's error, not the server's (HTTP's conventions).
            if record.status >= 500 or (broken and record.status < 400):
                server.set_attribute(names.ERROR_TYPE, self.failed or str(record.status))
                server.set_status(Status(StatusCode.ERROR))
            server.end(end)
        if self.tracing.instruments is not None and self.operation is not None:
            self._measure(self.tracing.instruments, record)

    def _describe(self, span: Span, record: RequestRecord) -> None:
        """The answer and its usage, on the span of the try that answered."""
        reader = self.reader
        if record.model and self.tries == 0:
            span.set_attribute(names.REQUEST_MODEL, record.model)
        if reader.id:
            span.set_attribute(names.RESPONSE_ID, reader.id)
        if reader.model:
            span.set_attribute(names.RESPONSE_MODEL, reader.model)
        if reader.finish_reasons:
            span.set_attribute(names.RESPONSE_FINISH_REASONS, reader.finish_reasons)
        if record.prompt_tokens is not None:
            span.set_attribute(names.USAGE_INPUT_TOKENS, record.prompt_tokens)
        if record.completion_tokens is not None:
            span.set_attribute(names.USAGE_OUTPUT_TOKENS, record.completion_tokens)
        if record.cached_tokens is not None:
            span.set_attribute(names.USAGE_CACHE_READ_INPUT_TOKENS, record.cached_tokens)
        if record.usage_source:
            span.set_attribute(names.GATEWAY_USAGE_SOURCE, record.usage_source)
        if self.first_chunk is not None:
            since = self.first_chunk - record.started
            span.set_attribute(names.RESPONSE_TIME_TO_FIRST_CHUNK, since)
        span.set_attribute(names.GATEWAY_ENDING, record.ending or "")
        if reader.capture and reader.texts:
            span.set_attribute(names.OUTPUT_MESSAGES, reader.output_messages())

    def _measure(self, instruments: Instruments, record: RequestRecord) -> None:
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
        if self.failed:
            instruments.duration.record(duration, {**attributes, names.ERROR_TYPE: self.failed})
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
                per_token = (duration - record.ttft) / (record.completion_tokens - 1)
                instruments.time_per_output_token.record(per_token, attributes)
