"""Prometheus metrics: an observer of the core, and the ``/metrics`` answer.

The series are the interface (README "Monitoring"); labels are bounded by design: no key,
user or request id (unless ``LLM_GATEWAY_METRICS_KEY_LABELS``, documented as unbounded), and
``model`` only for models the upstreams serve (discovered by their watchdogs), ``other``
for anything else a client sends. Histogram buckets are for LLM latencies.

With ``python -m llm_gateway.run --workers N`` the launcher sets ``PROMETHEUS_MULTIPROC_DIR``
before the workers start: prometheus_client then keeps the values in files there, and one
scrape of any worker reports them all together.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..conf import conf
from ..core.hooks import Observer, Tap
from ..core.record import RequestRecord
from ..core.request import GatewayRequest
from ..errors import AuthenticationFailed
from ..upstream.pool import UpstreamPool
from . import request_log

OTHER = "other"
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Buckets for LLM latencies, few enough that a scrape of 50 models stays short.
LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60)
PER_TOKEN = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 1)

# No "_created" series next to every counter and histogram: a third of a scrape's lines, and
# Prometheus' text format has no use for them (bench/metrics_scrape.py).
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)  # the gateway's own: a project's stay theirs
# Read once, when the series are made: a series' labels cannot change while it exists.
_KEY = ("key",) if conf.METRICS_KEY_LABELS else ()

REQUESTS = Counter(
    "llm_gateway_requests",
    "Relayed requests.",
    ("model", "upstream", "status", "stream", *_KEY),
    registry=REGISTRY,
)
DURATION = Histogram(
    "llm_gateway_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ("model", "stream"),
    buckets=LATENCY,
    registry=REGISTRY,
)
TTFT_SECONDS = Histogram(
    "llm_gateway_time_to_first_token_seconds",
    "Streams: time from arrival to the first token sent.",
    ("model",),
    buckets=TTFT,
    registry=REGISTRY,
)
TPOT = Histogram(
    "llm_gateway_time_per_output_token_seconds",
    "Streams: time after the first token, per completion token.",
    ("model",),
    buckets=PER_TOKEN,
    registry=REGISTRY,
)
TOKENS = Counter(
    "llm_gateway_tokens",
    "Tokens, by kind (prompt, completion).",
    ("model", "kind", *_KEY),
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "llm_gateway_requests_in_flight",
    "Requests being relayed now.",
    ("model",),
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
ENDINGS = Counter(
    "llm_gateway_stream_endings",
    "How streams ended: done, client_disconnected, error, upstream_closed.",
    ("ending",),
    registry=REGISTRY,
)
UPSTREAM_UP = Gauge(
    "llm_gateway_upstream_up",
    "1 while the upstream's watchdog holds it alive (or not yet probed), 0 once dead.",
    ("upstream",),
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
UPSTREAM_IN_FLIGHT = Gauge(
    "llm_gateway_upstream_requests_in_flight",
    "Requests in flight on each upstream.",
    ("upstream",),
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
FAILOVERS = Counter(
    "llm_gateway_upstream_failovers",
    "Requests retried on another replica after this one failed before the first byte.",
    ("upstream",),
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "llm_gateway_rate_limited",
    "Requests refused by a limit: requests, tokens, parallel, budget.",
    ("kind",),
    registry=REGISTRY,
)
LIMITS_UNAVAILABLE = Counter(
    "llm_gateway_limits_unavailable",
    "Requests met while the limits store (Redis) was unreachable: served uncounted (fail "
    "open) or refused (fail closed).",
    ("outcome",),
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "llm_gateway_auth_failures",
    "Requests refused for their key, by code.",
    ("code",),
    registry=REGISTRY,
)
REQUEST_LOG_DROPPED = Counter(
    "llm_gateway_request_log_dropped",
    "Request log rows dropped because the queue was full.",
    registry=REGISTRY,
)


class MetricsTap(Tap):
    """Counts the request in flight from its arrival to its end."""

    __slots__ = ("_gauge",)

    def __init__(self, gauge: Any) -> None:
        self._gauge = gauge
        gauge.inc()

    def finish(self, record: RequestRecord) -> None:
        self._gauge.dec()


class _Children:
    """A series' children by label values, kept: ``labels()`` validates and locks on every
    call, which was most of what the observer cost a request."""

    __slots__ = ("_metric", "_children")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class Metrics(Observer):
    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.requests = _Children(REQUESTS)
        self.duration = _Children(DURATION)
        self.ttft = _Children(TTFT_SECONDS)
        self.tpot = _Children(TPOT)
        self.tokens = _Children(TOKENS)
        self.in_flight = _Children(IN_FLIGHT)
        self.endings = _Children(ENDINGS)
        self.rate_limited = _Children(RATE_LIMITED)
        self.failovers = _Children(FAILOVERS)
        self.limits_unavailable = _Children(LIMITS_UNAVAILABLE)

    def model_label(self, model: str | None) -> str:
        """The model, if an upstream serves it; else ``other`` (labels stay bounded)."""
        if model is not None:
            for upstream in self.pool.upstreams:
                if model in upstream.models:
                    return model
        return OTHER

    def begin(self, request: GatewayRequest, record: RequestRecord) -> Tap | None:
        if not conf.METRICS:
            return None
        return MetricsTap(self.in_flight(self.model_label(record.model)))

    def finish(self, record: RequestRecord) -> None:
        if not conf.METRICS:
            return
        model = self.model_label(record.model)
        stream = "true" if record.stream else "false"
        key = (record.api_key.name if record.api_key else "",) if _KEY else ()
        self.requests(model, record.upstream or "", str(record.status), stream, *key).inc()
        if record.limited:
            self.count_limited(record.limited)
        for failed in record.tried:
            self.failovers(failed).inc()
        if record.duration is not None:
            self.duration(model, stream).observe(record.duration)
        if record.prompt_tokens:
            self.tokens(model, "prompt", *key).inc(record.prompt_tokens)
        if record.completion_tokens:
            self.tokens(model, "completion", *key).inc(record.completion_tokens)
        if not record.stream:
            return
        ending = record.ending or "client_disconnected"
        self.endings("error" if ending.startswith("error:") else ending).inc()
        if record.ttft is not None:
            self.ttft(model).observe(record.ttft)
            if record.completion_tokens and record.duration is not None:
                self.tpot(model).observe((record.duration - record.ttft) / record.completion_tokens)

    def count_limited(self, limited: str) -> None:
        if limited == "unchecked":
            self.limits_unavailable("served").inc()
        elif limited == "unavailable":
            self.limits_unavailable("refused").inc()
        else:
            self.rate_limited(limited).inc()


def count_auth_failure(code: str | None) -> None:
    if conf.METRICS:
        AUTH_FAILURES.labels(code or "invalid_api_key").inc()


def render(
    authorization: bytes | None, pool: UpstreamPool
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The ``/metrics`` answer: status, headers, body (a 401 without the configured token)."""
    token = conf.METRICS_TOKEN
    if token:
        expected = f"Bearer {token}".encode()
        if authorization is None or not hmac.compare_digest(authorization.strip(), expected):
            error = AuthenticationFailed("This endpoint needs the metrics token.")
            return 401, [(b"content-type", b"application/json"), *error.headers()], error.json()
    _refresh_gauges(pool)
    registry = REGISTRY
    if os.environ.get(MULTIPROCESS_DIR):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return 200, [(b"content-type", CONTENT_TYPE_LATEST.encode())], generate_latest(registry)


def _refresh_gauges(pool: UpstreamPool) -> None:
    """Values read at scrape time: each upstream's state, and the request log's drops."""
    for upstream in pool.upstreams:
        UPSTREAM_UP.labels(upstream.name).set(0 if upstream.health.dead else 1)
        UPSTREAM_IN_FLIGHT.labels(upstream.name).set(upstream.in_flight)
    dropped = request_log.writer.dropped - request_log.writer.dropped_counted
    if dropped > 0:
        REQUEST_LOG_DROPPED.inc(dropped)
        request_log.writer.dropped_counted += dropped
