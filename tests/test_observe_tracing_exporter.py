"""The span exporter sends our encoding through the SDK exporter's own client, and refuses
to start on an exporter version without what it relies on."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from llm_gateway.observe.tracing.exporter import SpanExporter


class Sent:
    def __init__(self, success: bool = True) -> None:
        self.data: list[bytes] = []
        self.success = success

    def export(self, data: bytes):
        self.data.append(data)
        return type("Result", (), {"success": self.success, "error": "refused"})()


def a_span(**kwargs) -> ReadableSpan:
    context = SpanContext(7, 8, False, TraceFlags(1))
    return ReadableSpan("s", context, resource=Resource({"service.name": "t"}), **kwargs)


def test_our_bytes_go_through_the_sdk_exporters_client(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    exporter = SpanExporter()
    exporter._client = sent = Sent()
    assert exporter.export([a_span(attributes={"k": "v"})]) == SpanExportResult.SUCCESS
    message = ExportTraceServiceRequest()
    message.ParseFromString(sent.data[0])
    (span,) = message.resource_spans[0].scope_spans[0].spans
    assert span.name == "s" and span.attributes[0].value.string_value == "v"
    sent.success = False
    assert exporter.export([a_span()]) == SpanExportResult.FAILURE


def test_a_span_it_cannot_write_goes_the_sdks_way(monkeypatch):
    exporter = SpanExporter()
    called = []
    monkeypatch.setattr(OTLPSpanExporter, "export", lambda self, spans: called.append(spans))
    exporter.export([a_span(events=[Event("e")])])
    assert len(called) == 1


def test_an_exporter_without_its_client_refuses_to_start(monkeypatch):
    original = OTLPSpanExporter.__init__

    def without_client(self, *args, **kwargs):
        original(self, *args, **kwargs)
        del self._client

    monkeypatch.setattr(OTLPSpanExporter, "__init__", without_client)
    with pytest.raises(RuntimeError, match="_client.export"):
        SpanExporter()
