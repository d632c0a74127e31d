"""The OpenTelemetry pipeline: spans out through the SDK's batching processor (its own
thread: export never runs on a request's path nor waits for a chunk), the GenAI metrics
through a periodic reader, both over OTLP/HTTP with protobuf, configured by the standard
``OTEL_*`` variables (endpoints, headers, service name, batch sizes).

A project that already set SDK providers (it runs ``opentelemetry-instrumentation-django``
with its own set-up, say) keeps them: the gateway's spans go through its pipeline and join
its traces. Otherwise the gateway's providers become the global ones, so that an
instrumentation the project adds later shares them. Providers are never shut down here (a
runtime rebuilt in the same process reuses the global ones); ``flush`` exports what is
pending, and the SDK shuts them down at exit."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider

from .names import SCHEMA_URL, SCOPE
from .options import TracingOptions
from .recorder import Recorder

logger = logging.getLogger(__name__)
DEFAULT_SERVICE = "llm-gateway"


class Pipeline:
    def __init__(self, options: TracingOptions, version: str = "") -> None:
        self.recorder: Recorder | None = None
        self.meter: metrics.Meter | None = None
        self._providers: list[Any] = []
        if options.traces:
            provider = _tracer_provider()
            self._providers.append(provider)
            self.recorder = Recorder(provider, version)
        if options.metrics:
            meters = _meter_provider()
            self._providers.append(meters)
            self.meter = meters.get_meter(SCOPE, version, schema_url=SCHEMA_URL)

    def flush(self, timeout_millis: int = 5000) -> None:
        """Export what is pending (blocking: call it off the event loop)."""
        for provider in self._providers:
            provider.force_flush(timeout_millis)


def resource() -> Resource:
    """``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` as the SDK reads them; the
    service is ``llm-gateway`` when they name none."""
    found = Resource.create()
    if str(found.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        found = found.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE}))
    return found


def _tracer_provider() -> TracerProvider:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from .exporter import SpanExporter

    provider = TracerProvider(resource=resource())
    provider.add_span_processor(BatchSpanProcessor(SpanExporter()))
    trace.set_tracer_provider(provider)
    logger.info("OpenTelemetry: spans export over OTLP/HTTP (service %s)", _service(provider))
    return provider


def _meter_provider() -> MeterProvider:
    current = metrics.get_meter_provider()
    if isinstance(current, MeterProvider):
        return current
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    provider = MeterProvider(metric_readers=[reader], resource=resource())
    metrics.set_meter_provider(provider)
    logger.info("OpenTelemetry: GenAI metrics export over OTLP/HTTP")
    return provider


def _service(provider: TracerProvider) -> str:
    return str(provider.resource.attributes.get(SERVICE_NAME, ""))
