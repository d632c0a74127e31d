"""When tracing is on: the standard OTEL_* variables, and LLM_GATEWAY_OTEL over them."""

from __future__ import annotations

import pytest

from llm_gateway.observe.tracing import TracingOptions

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}


@pytest.mark.parametrize(
    ("switch", "environ", "traces", "metrics"),
    [
        ("auto", {}, False, False),
        ("auto", ENDPOINT, True, True),
        ("auto", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True, False),
        ("auto", {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics"}, False, True),
        ("auto", {"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False, False),
        ("off", ENDPOINT, False, False),
        ("on", {}, True, False),
        ("auto", {**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False, False),
        ("auto", {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False, True),
        ("auto", {**ENDPOINT, "OTEL_METRICS_EXPORTER": "none"}, True, False),
    ],
)
def test_on_when_an_endpoint_is_configured_and_off_wins(switch, environ, traces, metrics):
    options = TracingOptions.from_environ(switch, environ)
    assert (options.traces, options.metrics) == (traces, metrics)
    assert options.enabled == (traces or metrics)


def test_content_capture_is_opt_in():
    assert not TracingOptions.from_environ("auto", ENDPOINT).capture_content
    opted = {**ENDPOINT, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
    assert TracingOptions.from_environ("auto", opted).capture_content


@pytest.mark.parametrize(
    ("propagators", "w3c"),
    [(None, True), ("tracecontext", True), ("baggage, tracecontext", True), ("b3", False)],
)
def test_the_w3c_propagators_alone_are_written_by_the_gateway(propagators, w3c):
    environ = {**ENDPOINT, **({"OTEL_PROPAGATORS": propagators} if propagators else {})}
    assert TracingOptions.from_environ("auto", environ).w3c is w3c
