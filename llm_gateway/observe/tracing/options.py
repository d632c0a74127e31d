"""Whether the gateway traces, read from the standard OpenTelemetry environment variables
(and ``LLM_GATEWAY_OTEL``), without importing OpenTelemetry: off, it costs nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
W3C_PROPAGATORS = frozenset({"tracecontext", "baggage"})


@dataclass(frozen=True, slots=True)
class TracingOptions:
    traces: bool = False  # spans, to OTLP over HTTP (protobuf)
    metrics: bool = False  # the GenAI metrics, to OTLP over HTTP
    capture_content: bool = False  # prompts and completions on the spans (opt-in)
    w3c: bool = True  # the propagators are W3C's alone (OTEL_PROPAGATORS, as by default)

    @property
    def enabled(self) -> bool:
        return self.traces or self.metrics

    @classmethod
    def from_environ(cls, switch: str, environ: Mapping[str, str]) -> TracingOptions:
        """``switch`` is ``LLM_GATEWAY_OTEL``: ``off`` wins over the environment; ``on``
        traces even with no endpoint (the exporter's default, localhost:4318); ``auto``
        traces when an OTLP endpoint is configured, and exports the metrics when one is
        configured for them. ``OTEL_SDK_DISABLED`` and ``OTEL_*_EXPORTER=none`` are heeded."""
        if switch == "off" or _true(environ.get("OTEL_SDK_DISABLED", "")):
            return cls()
        common = bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())
        traces = switch == "on" or common
        traces = traces or bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip())
        metrics = common or bool(environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "").strip())
        traces = traces and environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() != "none"
        metrics = metrics and environ.get("OTEL_METRICS_EXPORTER", "").strip().lower() != "none"
        propagators = environ.get("OTEL_PROPAGATORS", "tracecontext,baggage")
        w3c = {name.strip() for name in propagators.split(",")} <= W3C_PROPAGATORS
        return cls(traces, metrics, _true(environ.get(CAPTURE_CONTENT, "")), w3c)


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")
