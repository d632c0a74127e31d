"""The Django face in a project that traces its own requests: its own OpenTelemetry SDK
set-up (a tracer provider exporting over OTLP/HTTP) and ``opentelemetry-instrumentation-
django``, done before the application loads, as such a project's asgi.py does. The
gateway's spans must join the trace of the instrumentation's span."""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings_django")
provider = TracerProvider(resource=Resource.create({"service.name": "the-project"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
DjangoInstrumentor().instrument()

from project.asgi_django import application  # noqa: E402

__all__ = ["application"]
