"""Prometheus metrics: an observer of the core, and the ``/metrics`` answer.

Each runtime owns its registry and series (``GatewayMetrics``): nothing is made at import,
and a test's runtime counts apart from any other.

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
from collections.abc import Callable, Sequence
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

from ..core.hooks import Observer, Tap
from ..core.priority import CLASSES
from ..core.record import RequestRecord
from ..core.request import GatewayRequest
from ..errors import AuthenticationFailed
from ..upstream.pool import UpstreamPool

OTHER = "other"
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Buckets for LLM latencies, few enough that a scrape of 50 models stays short.
LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60)
PER_TOKEN = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 1)


class Series:
    """Every series of the gateway, in a registry of its own (a project's stay theirs). The
    names and labels are the interface (README "Monitoring")."""

    def __init__(self, key_labels: bool) -> None:
        # No "_created" series next to every counter and histogram: a third of a scrape's
        # lines, and Prometheus' text format has no use for them (bench/metrics_scrape.py).
        disable_created_metrics()
        self.registry = registry = CollectorRegistry(auto_describe=True)
        key = ("key",) if key_labels else ()
        self.requests = Counter(
            "llm_gateway_requests",
            "Relayed requests.",
            ("model", "upstream", "status", "stream", *key),
            registry=registry,
        )
        self.duration = Histogram(
            "llm_gateway_request_duration_seconds",
            "Time from a request's arrival to the end of its answer.",
            ("model", "stream"),
            buckets=LATENCY,
            registry=registry,
        )
        self.ttft = Histogram(
            "llm_gateway_time_to_first_token_seconds",
            "Streams: time from arrival to the first token sent.",
            ("model",),
            buckets=TTFT,
            registry=registry,
        )
        self.tpot = Histogram(
            "llm_gateway_time_per_output_token_seconds",
            "Streams: time after the first token, per completion token.",
            ("model",),
            buckets=PER_TOKEN,
            registry=registry,
        )
        self.tokens = Counter(
            "llm_gateway_tokens",
            "Tokens, by kind (prompt, completion).",
            ("model", "kind", *key),
            registry=registry,
        )
        self.in_flight = Gauge(
            "llm_gateway_requests_in_flight",
            "Requests being relayed now.",
            ("model",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.endings = Counter(
            "llm_gateway_stream_endings",
            "How streams ended: done, client_disconnected, error, upstream_closed.",
            ("ending",),
            registry=registry,
        )
        self.upstream_up = Gauge(
            "llm_gateway_upstream_up",
            "1 while the upstream's watchdog holds it alive (or not yet probed), 0 once dead.",
            ("upstream",),
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.upstream_in_flight = Gauge(
            "llm_gateway_upstream_requests_in_flight",
            "Requests in flight on each upstream.",
            ("upstream",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.failovers = Counter(
            "llm_gateway_upstream_failovers",
            "Requests retried on another replica after this one failed before the first byte.",
            ("upstream",),
            registry=registry,
        )
        self.rate_limited = Counter(
            "llm_gateway_rate_limited",
            "Requests refused by a limit: requests, tokens, parallel, budget.",
            ("kind",),
            registry=registry,
        )
        self.limits_unavailable = Counter(
            "llm_gateway_limits_unavailable",
            "Requests met while the limits store (Redis) was unreachable: served uncounted "
            "(fail open) or refused (fail closed).",
            ("outcome",),
            registry=registry,
        )
        self.auth_failures = Counter(
            "llm_gateway_auth_failures",
            "Requests refused for their key, by code.",
            ("code",),
            registry=registry,
        )
        self.request_log_dropped = Counter(
            "llm_gateway_request_log_dropped",
            "Request log rows dropped because the queue was full.",
            registry=registry,
        )
        # The scheduler (core.schedule) and the engines' own load (upstream.load).
        self.queue_depth = Gauge(
            "llm_gateway_queue_depth",
            "Requests waiting at the gateway for a replica with room.",
            ("model", "priority"),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.queue_wait = Histogram(
            "llm_gateway_queue_wait_seconds",
            "Time a request that waited spent in the gateway queue.",
            ("model", "priority"),
            buckets=TTFT,
            registry=registry,
        )
        self.queue_rejections = Counter(
            "llm_gateway_queue_rejections",
            "Requests refused by the gateway queue: queue_full, queue_timeout.",
            ("model", "code"),
            registry=registry,
        )
        self.replica_saturated = Gauge(
            "llm_gateway_replica_saturated",
            "1 while the replica has no room for another request (its engine's queue, KV "
            "cache, or max_in_flight).",
            ("upstream",),
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.engine_waiting = Gauge(
            "llm_gateway_engine_waiting",
            "Requests waiting inside the engine, as its /metrics last said.",
            ("upstream",),
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.engine_kv_usage = Gauge(
            "llm_gateway_engine_kv_usage",
            "The fraction of the engine's KV cache in use, as its /metrics last said.",
            ("upstream",),
            multiprocess_mode="livemax",
            registry=registry,
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


class QueueMetrics:
    """What the scheduler tells (``core.schedule.Watcher``): depth, waits, refusals."""

    __slots__ = ("_label", "_depth", "_wait", "_rejections")

    def __init__(self, series: Series, label: Callable[[str | None], str]) -> None:
        self._label = label
        self._depth = _Children(series.queue_depth)
        self._wait = _Children(series.queue_wait)
        self._rejections = _Children(series.queue_rejections)

    def queued(self, model: str, rank: int, change: int) -> None:
        self._depth(self._label(model), CLASSES[rank]).inc(change)

    def waited(self, model: str, rank: int, seconds: float) -> None:
        self._wait(self._label(model), CLASSES[rank]).observe(seconds)

    def rejected(self, model: str, code: str) -> None:
        self._rejections(self._label(model), code).inc()


class GatewayMetrics(Observer):
    """The observer that feeds the series, and the ``/metrics`` answer that reads them.

    ``dropped_rows`` tells, at scrape time, how many request-log rows were dropped in all
    (the writer's count): the metrics never reach into the writer themselves.
    """

    def __init__(
        self,
        pool: UpstreamPool,
        *,
        key_labels: bool = False,
        token: str = "",
        dropped_rows: Callable[[], int] | None = None,
    ) -> None:
        self.pool = pool
        self.series = series = Series(key_labels)
        self.key_labels = key_labels
        self.token = token
        self.dropped_rows = dropped_rows
        self._dropped_counted = 0
        self.requests = _Children(series.requests)
        self.duration = _Children(series.duration)
        self.ttft = _Children(series.ttft)
        self.tpot = _Children(series.tpot)
        self.tokens = _Children(series.tokens)
        self.in_flight = _Children(series.in_flight)
        self.endings = _Children(series.endings)
        self.rate_limited = _Children(series.rate_limited)
        self.failovers = _Children(series.failovers)
        self.limits_unavailable = _Children(series.limits_unavailable)
        self.auth_failures = _Children(series.auth_failures)
        self.queue = QueueMetrics(series, self.model_label)

    def model_label(self, model: str | None) -> str:
        """The model, if an upstream serves it; else ``other`` (labels stay bounded)."""
        if model is not None:
            for upstream in self.pool.upstreams:
                if model in upstream.models:
                    return model
        return OTHER

    def begin(self, request: GatewayRequest, record: RequestRecord) -> Tap | None:
        return MetricsTap(self.in_flight(self.model_label(record.model)))

    def finish(self, record: RequestRecord) -> None:
        model = self.model_label(record.model)
        stream = "true" if record.stream else "false"
        key = (record.api_key.name if record.api_key else "",) if self.key_labels else ()
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

    def count_auth_failure(self, code: str | None) -> None:
        self.auth_failures(code or "invalid_api_key").inc()

    def render(self, authorization: bytes | None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The ``/metrics`` answer: status, headers (with its length), body; a 401 without
        the configured token. Both faces send exactly this."""
        if self.token:
            expected = f"Bearer {self.token}".encode()
            if authorization is None or not hmac.compare_digest(authorization.strip(), expected):
                error = AuthenticationFailed("This endpoint needs the metrics token.")
                return _answer(401, b"application/json", error.json(), error.headers())
        self._refresh_gauges()
        registry = self.series.registry
        if os.environ.get(MULTIPROCESS_DIR):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return _answer(200, CONTENT_TYPE_LATEST.encode(), generate_latest(registry))

    def _refresh_gauges(self) -> None:
        """Values read at scrape time: each upstream's state, and the request log's drops."""
        series = self.series
        for upstream in self.pool.upstreams:
            series.upstream_up.labels(upstream.name).set(0 if upstream.health.dead else 1)
            series.upstream_in_flight.labels(upstream.name).set(upstream.in_flight)
            load = upstream.load
            series.replica_saturated.labels(upstream.name).set(1 if load.saturated() else 0)
            if load.engine is not None:
                series.engine_waiting.labels(upstream.name).set(load.engine.waiting)
                if load.engine.kv_usage is not None:
                    series.engine_kv_usage.labels(upstream.name).set(load.engine.kv_usage)
        if self.dropped_rows is not None:
            dropped = self.dropped_rows() - self._dropped_counted
            if dropped > 0:
                series.request_log_dropped.inc(dropped)
                self._dropped_counted += dropped


def _answer(
    status: int, content_type: bytes, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *extra]
    return status, headers, body
