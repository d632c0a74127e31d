"""The gateway's settings, read at call time.

Each ``LLM_GATEWAY_<NAME>`` is looked up in Django settings first, then in the environment
variable of the same name, then falls back to a default. Nothing is read at import, so
``override_settings`` takes effect at once (django-cors-headers' ``conf.py`` pattern; knox's
read-at-import is the flaw to avoid).

A resolved value is remembered until Django's ``setting_changed`` signal (sent by
``override_settings``) or ``conf.reload()``: an unset Django setting costs a caught
AttributeError, about 2 us, and the relay reads about ten settings per request.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.conf import settings as django_settings
from django.core.signals import setting_changed

from .upstream.config import ReplicaSpec, parse_replicas

T = TypeVar("T")
PREFIX = "LLM_GATEWAY_"
_MISSING = object()


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def parse_bool(value: Any) -> bool:
    """The one bool parser: a bool, or one of the words above; anything else is a ValueError
    (which the system check reports at start-up, instead of a guess)."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def env_flag(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    """A switch read from the environment before Django's settings exist (the launcher, the
    logging config, the example settings): unset or empty gives the default; an unreadable
    value also gives the default, with one line on stderr (logging is not configured yet)."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        return default
    try:
        return parse_bool(value)
    except ValueError as exc:
        print(f"llm_gateway: {name}: {exc}; using {default}", file=sys.stderr)
        return default


def parse_list(value: Any) -> list[str]:
    """A list or tuple as given, or a comma-separated string; blanks trimmed and dropped."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


class Settings:
    """Typed accessors for every setting the app reads (the only place that names them)."""

    def __init__(self) -> None:
        self._resolved: dict[str, Any] = {}

    def reload(self) -> None:
        """Forget resolved values: the next read looks at settings and environment again."""
        self._resolved.clear()

    def _get(
        self,
        name: str,
        default: T,
        parse: Callable[[Any], T],
        empty_is_default: bool = True,
    ) -> T:
        try:
            return self._resolved[name]
        except KeyError:
            pass
        value = getattr(django_settings, PREFIX + name, _MISSING)
        if value is _MISSING:
            value = os.environ.get(PREFIX + name, _MISSING)
        unset = value is _MISSING or value is None or (value == "" and empty_is_default)
        result = default if unset else parse(value)
        self._resolved[name] = result
        return result

    # --- authentication -------------------------------------------------------------------
    @property
    def API_KEYS(self) -> list[str]:
        """Static keys (like vLLM's --api-key), compared by digest in constant time."""
        return self._get("API_KEYS", [], parse_list)

    @property
    def AUTH_PREFIXES(self) -> list[str]:
        """Path prefixes that need a key; a path is guarded if it equals one or is below it."""
        return self._get("AUTH_PREFIXES", ["/v1"], parse_list)

    @property
    def TRUSTED_PROXIES(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Addresses or networks (CIDR) of the reverse proxies whose X-Forwarded-For and
        X-Forwarded-Proto are believed; empty: nobody's."""
        return self._get("TRUSTED_PROXIES", [], _parse_networks)

    @property
    def ALLOW_UNAUTHENTICATED(self) -> bool:
        """An open gateway: the relay serves requests that carry no key (checked: W003)."""
        return self._get("ALLOW_UNAUTHENTICATED", False, parse_bool)

    # --- the relay ------------------------------------------------------------------------
    @property
    def RELAY_PREFIX(self) -> str | None:
        """Where the ASGI fast path serves the relay (``/v1``); ``off`` leaves every path to
        Django, whose ``llm_gateway.urls`` then serve it wherever they are included."""
        prefix: str | None = "/v1"
        return self._get("RELAY_PREFIX", prefix, _parse_prefix)

    @property
    def POLICIES(self) -> list[str]:
        """Dotted paths of extra policies (classes or factories), run after the built-in ones."""
        return self._get("POLICIES", [], parse_list)

    @property
    def OBSERVERS(self) -> list[str]:
        """Dotted paths of extra observers, told of every request once it ends."""
        return self._get("OBSERVERS", [], parse_list)

    @property
    def KEY_CACHE_SECONDS(self) -> float:
        """How often each process re-reads the keys it has cached (revocation latency)."""
        return self._get("KEY_CACHE_SECONDS", 0.5, float)

    @property
    def LAST_USED_INTERVAL(self) -> float:
        """At most one last_used_at write per key in this many seconds."""
        return self._get("LAST_USED_INTERVAL", 60.0, float)

    # --- upstream -------------------------------------------------------------------------
    @property
    def UPSTREAM_URL(self) -> str:
        """The engine's base URL including /v1, e.g. http://127.0.0.1:8001/v1."""
        return self._get("UPSTREAM_URL", "", str).rstrip("/")

    @property
    def UPSTREAMS_LIST(self) -> list[ReplicaSpec]:
        """``LLM_GATEWAY_UPSTREAMS``: several replicas (a list, or JSON holding one)."""
        return self._get("UPSTREAMS", [], parse_replicas)

    @property
    def UPSTREAMS(self) -> list[ReplicaSpec]:
        """The replicas: ``UPSTREAMS`` if set, else ``UPSTREAM_URL`` as a pool of one."""
        replicas = self.UPSTREAMS_LIST
        if replicas or not self.UPSTREAM_URL:
            return replicas
        return [ReplicaSpec(self.UPSTREAM_URL, None, self.UPSTREAM_API_KEY)]

    @property
    def ROUTING(self) -> str:
        """How requests are spread over the replicas of a model."""
        return self._get("ROUTING", "least_outstanding", _parse_routing)

    @property
    def RETRIES(self) -> int:
        """Other replicas tried when one fails before the first byte (refused, reset, 5xx)."""
        return self._get("RETRIES", 2, int)

    @property
    def AFFINITY_PREFIX_CHARS(self) -> int:
        """``prefix_affinity``: characters of the system prompt and first messages hashed."""
        return self._get("AFFINITY_PREFIX_CHARS", 2048, int)

    @property
    def AFFINITY_LOAD_FACTOR(self) -> float:
        """``prefix_affinity``: a replica above this many times the average load passes the
        request on (consistent hashing with bounded loads, c)."""
        return self._get("AFFINITY_LOAD_FACTOR", 1.25, float)

    @property
    def EJECT_FAILURES(self) -> int:
        """Failures in a row that eject a replica (passive health)."""
        return self._get("EJECT_FAILURES", 3, int)

    @property
    def EJECT_SECONDS(self) -> float:
        """A replica's first cooldown; each new ejection doubles it, up to the maximum."""
        return self._get("EJECT_SECONDS", 2.0, float)

    @property
    def EJECT_MAX_SECONDS(self) -> float:
        return self._get("EJECT_MAX_SECONDS", 60.0, float)

    @property
    def UPSTREAM_API_KEY(self) -> str:
        """The key sent upstream; the client's own key is never forwarded."""
        return self._get("UPSTREAM_API_KEY", "", str)

    @property
    def UPSTREAM_REQUEST_ID_HEADER(self) -> str:
        """The header that carries the request id upstream; empty: not sent. llama-cpp-python's
        server rejects an X-Request-Id that is not a UUID (HTTP 400), hence the setting."""
        return self._get(
            "UPSTREAM_REQUEST_ID_HEADER", "X-Request-Id", lambda v: str(v).strip(), False
        )

    @property
    def CONNECT_TIMEOUT(self) -> float:
        return self._get("CONNECT_TIMEOUT", 5.0, float)

    @property
    def READ_TIMEOUT(self) -> float:
        """Longest silence between two upstream reads; long prefills are normal, hence 600 s."""
        return self._get("READ_TIMEOUT", 600.0, float)

    @property
    def MAX_BODY_BYTES(self) -> int:
        return self._get("MAX_BODY_BYTES", 32 * 1024 * 1024, int)

    @property
    def POOL_SIZE(self) -> int:
        """Upper bound on open upstream connections per process (0: no limit)."""
        return self._get("POOL_SIZE", 0, int)

    # --- limits ---------------------------------------------------------------------------
    @property
    def REDIS_URL(self) -> str:
        """The Redis that every process shares limits in (default: the ``REDIS_URL``
        environment variable); empty: each process counts alone, in memory."""
        return self._get("REDIS_URL", os.environ.get("REDIS_URL", ""), _parse_redis_url)

    @property
    def LIMITS_FAIL(self) -> str:
        """Redis unreachable: ``open`` serves uncounted (warned once, counted in metrics),
        ``closed`` answers 503."""
        return self._get("LIMITS_FAIL", "open", _parse_fail_mode)

    @property
    def LIMITS_TIMEOUT(self) -> float:
        """Longest wait for Redis (connect or answer) before the store counts as unreachable."""
        return self._get("LIMITS_TIMEOUT", 0.5, float)

    @property
    def LIMITS_LEASE_SECONDS(self) -> float:
        """A slot of a process that died is free after this long (live ones are renewed)."""
        return self._get("LIMITS_LEASE_SECONDS", 30.0, float)

    @property
    def LIMITS_DEFAULT_MAX_TOKENS(self) -> int:
        """The completion tokens a request without ``max_tokens`` reserves (then settled)."""
        return self._get("LIMITS_DEFAULT_MAX_TOKENS", 1024, int)

    @property
    def LIMITS_NAMESPACE(self) -> str:
        """Prefix of the limits' Redis keys: gateways sharing a Redis count apart."""
        return self._get("LIMITS_NAMESPACE", "llm_gateway", str)

    # --- realtime -------------------------------------------------------------------------
    @property
    def WS_MAX_FRAME_BYTES(self) -> int:
        """A realtime frame larger than this (either way) closes the session with 1009."""
        return self._get("WS_MAX_FRAME_BYTES", 16 * 1024 * 1024, int)

    @property
    def WS_IDLE_SECONDS(self) -> float:
        """A realtime session with no frame either way for this long is closed (0: never)."""
        return self._get("WS_IDLE_SECONDS", 300.0, float)

    # --- usage ----------------------------------------------------------------------------
    @property
    def USAGE(self) -> bool:
        """Usage accounting: token counts of every request (streams ask the engine for them)."""
        return self._get("USAGE", True, parse_bool)

    @property
    def UPSTREAM_CONTINUOUS_USAGE(self) -> bool:
        """The engine reports usage in every chunk when asked (vLLM's
        ``stream_options.continuous_usage_stats``): streams ask, so that a client that leaves
        mid-stream is charged exactly; the fields are stripped unless the client asked."""
        return self._get("UPSTREAM_CONTINUOUS_USAGE", False, parse_bool)

    @property
    def REQUEST_LOG(self) -> bool:
        """One database row per relayed request, written in batches off the request's path."""
        return self._get("REQUEST_LOG", True, parse_bool)

    @property
    def REQUEST_LOG_QUEUE(self) -> int:
        """Records waiting for the database at most (an outage): past it, new ones are dropped."""
        return self._get("REQUEST_LOG_QUEUE", 50_000, int)

    @property
    def REQUEST_LOG_BATCH(self) -> int:
        """Records written in one insert; a batch is written at least once a second."""
        return self._get("REQUEST_LOG_BATCH", 500, int)

    # --- metrics --------------------------------------------------------------------------
    @property
    def METRICS(self) -> bool:
        """``GET /metrics`` in Prometheus' format, and the observer that feeds it."""
        return self._get("METRICS", True, parse_bool)

    @property
    def METRICS_TOKEN(self) -> str:
        """When set, ``/metrics`` needs ``Authorization: Bearer <token>``."""
        return self._get("METRICS_TOKEN", "", str)

    @property
    def METRICS_KEY_LABELS(self) -> bool:
        """A ``key`` label on requests and tokens: one series per key, unbounded."""
        return self._get("METRICS_KEY_LABELS", False, parse_bool)

    # --- logging --------------------------------------------------------------------------
    @property
    def LOG_RESPONSES(self) -> bool:
        """Log requests and response bodies / streamed content (never keys)."""
        return self._get("LOG_RESPONSES", False, parse_bool)

    @property
    def LOG_MAX_CHARS(self) -> int:
        return self._get("LOG_MAX_CHARS", 2048, int)

    # --- process --------------------------------------------------------------------------
    @property
    def DRAIN_SECONDS(self) -> float:
        """On SIGTERM, how long requests in flight may run on (python -m llm_gateway.run)."""
        return self._get("DRAIN_SECONDS", 30.0, float)

    @property
    def GC_FREEZE(self) -> bool:
        """Freeze the start-up heap out of the garbage collector's full collections."""
        return self._get("GC_FREEZE", True, parse_bool)

    # --- watchdog -------------------------------------------------------------------------
    @property
    def HEALTH_PATH(self) -> str:
        """Absolute path probed on the upstream's origin; empty: /health, else <upstream>/models."""
        return self._get("HEALTH_PATH", "", str)

    @property
    def WATCHDOG_INTERVAL(self) -> float:
        return self._get("WATCHDOG_INTERVAL", 5.0, float)

    @property
    def WATCHDOG_FAILURES(self) -> int:
        """Failed probes in a row after which the engine is declared dead."""
        return self._get("WATCHDOG_FAILURES", 2, int)

    @property
    def EXIT_ON_ENGINE_DEATH(self) -> bool:
        return self._get("EXIT_ON_ENGINE_DEATH", False, parse_bool)


def _parse_prefix(value: Any) -> str | None:
    text = str(value).strip()
    if text.lower() in _FALSE | {"none", ""}:
        return None
    if not text.startswith("/"):
        raise ValueError(f"{text!r} must start with '/'")
    return text.rstrip("/") or None


ROUTINGS = ("least_outstanding", "round_robin", "prefix_affinity")


def _parse_routing(value: Any) -> str:
    routing = str(value).strip().lower()
    if routing not in ROUTINGS:
        raise ValueError(f"{value!r} is not one of {', '.join(ROUTINGS)}")
    return routing


def _parse_networks(value: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item, strict=False) for item in parse_list(value)]


def _parse_redis_url(value: Any) -> str:
    url = str(value).strip()
    if url and not url.startswith(("redis://", "rediss://")):
        raise ValueError("must be a redis:// or rediss:// URL")
    return url


def _parse_fail_mode(value: Any) -> str:
    mode = str(value).strip().lower()
    if mode not in ("open", "closed"):
        raise ValueError(f"{value!r} is neither open nor closed")
    return mode


def setting_names() -> list[str]:
    """Every setting the app reads (the system check reads each one to find bad values)."""
    return [name for name, value in vars(Settings).items() if isinstance(value, property)]


conf = Settings()


def _forget_changed_setting(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(PREFIX):
        conf.reload()


setting_changed.connect(_forget_changed_setting)
