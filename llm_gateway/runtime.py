"""This process's runtime: everything stateful, built from the settings in one place and
started and stopped in one place (the composition root).

The runtime owns the relay and its upstream pool, the key store and authenticator, the limits,
the request-log writer, the metrics, the realtime sessions and the drain's switch. The faces
(the ASGI face, the Django views and middleware, the realtime relay), the server's drain and
the management commands are handed one (``get_runtime()``, or their own in tests); nothing
below them imports a runtime, a face or a module-level singleton. Nothing starts at import:
``start()`` runs on the first request (or at ASGI lifespan start-up), ``aclose()`` at ASGI
lifespan shutdown or before daphne's reactor stops (``llm_gateway.server``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from django.utils.module_loading import import_string

from .conf import Settings
from .core import Observer, Policy, Relay, RelayOptions, Responder
from .core.schedule import ScheduleOptions, Scheduler
from .errors import GatewayError
from .keys import Authenticator, KeyStore, KeyStoreOptions
from .limits import LimitsOptions, LimitsPolicy
from .limits.fair_counters import SharedCounters
from .observe.metrics import GatewayMetrics
from .observe.request_log import RequestLogObserver, RequestLogWriter
from .observe.response_log import ResponseLog
from .observe.tracing import TracingOptions
from .pricing import PricingOptions, PricingPolicy
from .upstream import (
    BreakerOptions,
    PoolOptions,
    ReplicaSpec,
    Upstream,
    UpstreamOptions,
    UpstreamPool,
    WatchdogOptions,
)

if TYPE_CHECKING:
    from .observe.tracing.pipeline import Pipeline

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeOptions:
    """Everything a runtime is built from, as values (``from_settings`` reads ``conf``)."""

    replicas: tuple[ReplicaSpec, ...] = ()
    relay: RelayOptions = field(default_factory=RelayOptions)
    pool: PoolOptions = field(default_factory=PoolOptions)
    upstream: UpstreamOptions = field(default_factory=UpstreamOptions)
    keys: KeyStoreOptions = field(default_factory=KeyStoreOptions)
    auth_prefixes: tuple[str, ...] = ("/v1",)
    limits: LimitsOptions = field(default_factory=LimitsOptions)
    pricing: PricingOptions = field(default_factory=PricingOptions)
    schedule: ScheduleOptions = field(default_factory=ScheduleOptions)
    request_log: bool = True
    request_log_queue: int = 50_000
    request_log_batch: int = 500
    metrics: bool = True
    metrics_token: str = ""
    metrics_key_labels: bool = False
    tracing: TracingOptions = field(default_factory=TracingOptions)
    log_responses: bool = False
    log_max_chars: int = 2048
    exit_on_engine_death: bool = False
    policies: tuple[str, ...] = ()  # dotted paths of a project's own, after the built-in ones
    observers: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, conf: Settings) -> RuntimeOptions:
        return cls(
            replicas=tuple(conf.UPSTREAMS),
            relay=RelayOptions(
                usage=conf.USAGE,
                continuous_usage=conf.UPSTREAM_CONTINUOUS_USAGE,
                allow_unauthenticated=conf.ALLOW_UNAUTHENTICATED,
                retries=conf.RETRIES,
                affinity_prefix_chars=conf.AFFINITY_PREFIX_CHARS,
                request_id_header=conf.UPSTREAM_REQUEST_ID_HEADER,
            ),
            pool=PoolOptions(conf.ROUTING, conf.AFFINITY_LOAD_FACTOR),
            upstream=UpstreamOptions(
                connect_timeout=conf.CONNECT_TIMEOUT,
                read_timeout=conf.READ_TIMEOUT,
                pool_size=conf.POOL_SIZE,
                watchdog=WatchdogOptions(
                    conf.WATCHDOG_INTERVAL, conf.WATCHDOG_FAILURES, conf.HEALTH_PATH
                ),
                breaker=BreakerOptions(
                    conf.EJECT_FAILURES, conf.EJECT_SECONDS, conf.EJECT_MAX_SECONDS
                ),
                read_engine_metrics=conf.SCHEDULER,
                engine_metrics_interval=conf.ENGINE_METRICS_INTERVAL,
            ),
            schedule=ScheduleOptions(
                enabled=conf.SCHEDULER,
                queue_max=conf.QUEUE_MAX,
                queue_timeout=conf.QUEUE_TIMEOUT,
                aging=conf.PRIORITY_AGING,
                input_weight=conf.FAIR_INPUT_WEIGHT,
                output_weight=conf.FAIR_OUTPUT_WEIGHT,
                fairness_by=conf.FAIRNESS_BY,
                batch_headroom=conf.BATCH_HEADROOM,
            ),
            keys=KeyStoreOptions(
                conf.KEY_CACHE_SECONDS, conf.LAST_USED_INTERVAL, tuple(conf.API_KEYS)
            ),
            auth_prefixes=tuple(conf.AUTH_PREFIXES),
            limits=LimitsOptions(
                redis_url=conf.REDIS_URL,
                redis_cluster=conf.REDIS_CLUSTER,
                fail=conf.LIMITS_FAIL,
                timeout=conf.LIMITS_TIMEOUT,
                lease_seconds=conf.LIMITS_LEASE_SECONDS,
                default_max_tokens=conf.LIMITS_DEFAULT_MAX_TOKENS,
                namespace=conf.LIMITS_NAMESPACE,
                currency=conf.CURRENCY,
            ),
            request_log=conf.REQUEST_LOG,
            request_log_queue=conf.REQUEST_LOG_QUEUE,
            request_log_batch=conf.REQUEST_LOG_BATCH,
            metrics=conf.METRICS,
            metrics_token=conf.METRICS_TOKEN,
            metrics_key_labels=conf.METRICS_KEY_LABELS,
            tracing=TracingOptions.from_environ(conf.OTEL, os.environ),
            log_responses=conf.LOG_RESPONSES,
            log_max_chars=conf.LOG_MAX_CHARS,
            exit_on_engine_death=conf.EXIT_ON_ENGINE_DEATH,
            policies=tuple(conf.POLICIES),
            observers=tuple(conf.OBSERVERS),
        )


class OpenSession(Protocol):
    """A long-lived session the drain must end (a realtime WebSocket)."""

    def close_soon(self, code: int, reason: str) -> None: ...


class Runtime:
    def __init__(self, options: RuntimeOptions | None = None) -> None:
        self.options = options = options or RuntimeOptions()
        upstream_options = replace(options.upstream, on_dead=self._engine_died)
        self.pool = UpstreamPool(
            [Upstream.from_spec(spec, upstream_options) for spec in options.replicas],
            options.pool,
        )
        writer = (
            RequestLogWriter(options.request_log_queue, options.request_log_batch)
            if options.request_log
            else None
        )
        self.request_log = writer
        self.metrics = (
            GatewayMetrics(
                self.pool,
                key_labels=options.metrics_key_labels,
                token=options.metrics_token,
                dropped_rows=(lambda: writer.dropped) if writer is not None else None,
            )
            if options.metrics
            else None
        )
        from .models import ApiKey, ModelPrice  # apps are ready once a runtime is built
        from .reporting.key_usage import KeyUsage

        self.key_store = KeyStore(options.keys, ApiKey)
        self.authenticator = Authenticator(
            self.key_store,
            options.auth_prefixes,
            self.metrics.count_auth_failure if self.metrics is not None else None,
        )
        # Pricing first: the limits reserve a money budget from the price it finds, and its
        # settle step works out the cost that theirs then charges.
        self.pricing = PricingPolicy(options.pricing, ModelPrice.book_rows)
        self.limits = LimitsPolicy(options.limits)
        policies: list[Policy] = [self.pricing, self.limits, *_load(options.policies)]
        observers: list[Observer] = []
        if options.log_responses:
            observers.append(ResponseLog(options.log_max_chars))
        if self.request_log is not None:
            observers.append(RequestLogObserver(self.request_log))
        if self.metrics is not None:
            observers.append(self.metrics)
        self.tracing: Pipeline | None = None
        if options.tracing.enabled:
            from .observe import tracing

            tracer, self.tracing = tracing.build(options.tracing, _version())
            observers.append(tracer)
        observers += _load(options.observers)
        own: list[Responder] = [
            KeyUsage(options.limits.currency)
        ]  # /v1/gateway/...: the key's own usage
        # The fair-share counters: shared by every process through Redis when there is one.
        self.fair_counters = (
            SharedCounters(
                options.limits.redis_url,
                options.limits.namespace,
                cluster=options.limits.redis_cluster,
            )
            if options.schedule.enabled and options.limits.redis_url
            else None
        )
        self.scheduler = Scheduler(
            self.pool,
            options.schedule,
            self.fair_counters,
            watcher=self.metrics.queue if self.metrics else None,
        )
        self.relay = Relay(self.pool, policies, observers, options.relay, own, self.scheduler)
        self.sessions: set[OpenSession] = set()  # realtime sessions open now
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started_on: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, conf: Settings) -> Runtime:
        return cls(RuntimeOptions.from_settings(conf))

    # --- start and stop -------------------------------------------------------------------
    def start(self) -> None:
        """Start the background work on the running loop (again after a loop change). The
        faces call it on every request: after the first, it is one comparison."""
        loop = asyncio.get_running_loop()
        if loop is self._started_on:
            return
        self._started_on = loop
        self.pool.start()
        if self.fair_counters is not None:
            self.fair_counters.ensure_started()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background, in a context of its own; awaited at ``aclose``."""
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop the background work, close the upstream connections, write the log's queue."""
        self._started_on = None
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.pool.aclose()
        if self.fair_counters is not None:
            await self.fair_counters.aclose()
        for policy in self.relay.policies:
            await policy.aclose()
        await self.key_store.aclose()
        if self.request_log is not None:
            await self.request_log.aclose()
        if self.tracing is not None:  # what is pending goes out (the exporter blocks)
            await asyncio.get_running_loop().run_in_executor(None, self.tracing.flush)
        written = self.request_log.written if self.request_log else 0
        dropped = self.request_log.dropped if self.request_log else 0
        logger.info(
            "gateway stopped: watchdogs, key store and upstream sessions closed, "
            "request log written (%d rows, %d dropped)",
            written,
            dropped,
        )

    # --- the drain ------------------------------------------------------------------------
    @property
    def draining(self) -> bool:
        return not self.relay.accepting

    def begin_drain(self) -> None:
        """New requests get 503 ``server_shutting_down``; realtime sessions are told to go
        away (1001), so that clients reconnect to another process."""
        self.relay.accepting = False
        self.scheduler.close()  # waiting requests: server_shutting_down
        for session in list(self.sessions):
            session.close_soon(1001, "going away: the gateway is shutting down")

    def interrupt(self, error: GatewayError) -> int:
        """End every answer still being relayed with ``error`` (the drain's deadline)."""
        return self.relay.interrupt(error)

    def _engine_died(self, name: str) -> None:
        if self.options.exit_on_engine_death:
            logger.error("LLM_GATEWAY_EXIT_ON_ENGINE_DEATH is set: stopping this process")
            os.kill(os.getpid(), signal.SIGTERM)  # the drain takes it from there


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-gateway")
    except PackageNotFoundError:
        return ""


def _load(paths: tuple[str, ...]) -> list[Any]:
    """Instances of the classes (or results of the factories) named by dotted paths."""
    return [import_string(path)() for path in paths]


def get_runtime() -> Runtime:
    """This process's runtime (built from the settings on first use, and again after a
    setting changed): for the faces, the drain and the commands."""
    from django.apps import apps

    runtime: Runtime = apps.get_app_config("llm_gateway").runtime  # type: ignore[attr-defined]
    return runtime
