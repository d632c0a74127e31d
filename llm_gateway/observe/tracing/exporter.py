"""The OTLP/HTTP span exporter, with our encoder (``wire``) in place of the SDK's: the
SDK's exporter still sends (endpoint, headers, TLS, compression, retries from the standard
variables); only the bytes are written faster.

It relies on the SDK exporter's ``_client.export(bytes)`` and ``_shutdown`` (checked when it
is built: a version without them refuses to start, naming what changed), as tested with
``opentelemetry-exporter-otlp-proto-http`` 1.45."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.metadata import version

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from . import wire

logger = logging.getLogger(__name__)
TESTED = "1.45"


class SpanExporter(OTLPSpanExporter):
    def __init__(self) -> None:
        super().__init__()
        client = getattr(self, "_client", None)
        if not callable(getattr(client, "export", None)) or not hasattr(self, "_shutdown"):
            raise RuntimeError(
                "llm_gateway's OTLP span exporter relies on OTLPSpanExporter._client.export "
                f"and ._shutdown (opentelemetry-exporter-otlp-proto-http {TESTED}); "
                f"version {version('opentelemetry-exporter-otlp-proto-http')} has not both. "
                "Install the tested version (requirements.txt) or set LLM_GATEWAY_OTEL=off."
            )
        self.encoder = wire.Encoder()  # used by the batching thread alone

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            data = self.encoder.encode(spans)
        except wire.Unwritable:
            return super().export(spans)  # a span of another instrumentation, say
        result = self._client.export(data)
        if result.success:
            return SpanExportResult.SUCCESS
        logger.warning("OpenTelemetry: %d spans not exported: %s", len(spans), result.error)
        return SpanExportResult.FAILURE
