"""The gateway's settings, read at call time: the one place that names them.

Each ``LLM_GATEWAY_<NAME>`` is looked up in Django settings first, then in the environment
variable of the same name, then falls back to a default. Nothing is read at import, so
``override_settings`` takes effect at once (django-cors-headers' ``conf.py`` pattern; knox's
read-at-import is the flaw to avoid). What is read before Django's settings exist (the
logging configuration, the launcher) reads the same settings from the environment alone
(``Settings(environ=...)``), so every setting is parsed and checked in one place.

A resolved value is remembered until ``conf.reload()`` (the app calls it on Django's
``setting_changed`` signal, which ``override_settings`` sends). The runtime reads the
settings once, when it is built; faces read a few per request.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, overload
from urllib.parse import urlsplit

from django.conf import settings as django_settings

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
    """A switch of the example project read from the environment (``DJANGO_DEBUG``): unset or
    empty gives the default; an unreadable value also gives the default, with one line on
    stderr (logging is not configured yet)."""
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


def parse_endpoints(value: Any) -> list[str]:
    """Comma-separated paths; entries trimmed, empty ones dropped, query strings ignored."""
    paths = (item.split("?", 1)[0].strip() for item in parse_list(value))
    return [path for path in paths if path]


def one_of(*choices: str, lower: bool = True) -> Callable[[Any], str]:
    """A parser that accepts one of ``choices`` (compared in lower or upper case)."""

    def parse(value: Any) -> str:
        word = str(value).strip()
        word = word.lower() if lower else word.upper()
        if word not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return word

    return parse


def positive(parse: Callable[[Any], T]) -> Callable[[Any], T]:
    """``parse``, then a ValueError for a number at or below 0."""

    def parse_positive(value: Any) -> T:
        number = parse(value)
        if number <= 0:  # type: ignore[operator]
            raise ValueError(f"{value!r} must be above 0")
        return number

    return parse_positive


def at_least_zero(parse: Callable[[Any], T]) -> Callable[[Any], T]:
    """``parse``, then a ValueError for a number below 0."""

    def parse_at_least_zero(value: Any) -> T:
        number = parse(value)
        if number < 0:  # type: ignore[operator]
            raise ValueError(f"{value!r} must be 0 or above")
        return number

    return parse_at_least_zero


def stripped(value: Any) -> str:
    return str(value).strip()


def _parse_prefix(value: Any) -> str | None:
    text = str(value).strip()
    if text.lower() in _FALSE | {"none", ""}:
        return None
    if not text.startswith("/"):
        raise ValueError(f"{text!r} must start with '/'")
    return text.rstrip("/") or None


def _parse_currency(value: Any) -> str:
    code = str(value).strip().upper()
    if not (len(code) == 3 and code.isalpha() and code.isascii()):
        raise ValueError(f"{value!r} is not a three-letter currency code (ISO 4217: USD, EUR)")
    return code


def _parse_networks(value: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item, strict=False) for item in parse_list(value)]


def _parse_redis_url(value: Any) -> str:
    url = str(value).strip()
    schemes = ("redis://", "rediss://", "redis+sentinel://", "rediss+sentinel://")
    if url and not url.startswith(schemes):
        raise ValueError("must be a redis://, rediss:// or redis+sentinel:// URL")
    if "+sentinel://" in url and not (urlsplit(url).hostname and urlsplit(url).path.strip("/")):
        raise ValueError("a Sentinel URL names its sentinels and master: host:26379/mymaster")
    return url


def _parse_load_factor(value: Any) -> float:
    factor = float(value)
    if factor < 1:
        raise ValueError(
            f"{value!r} must be at least 1 (1.25: a replica takes up to 25% more than the "
            "average before passing requests on)"
        )
    return factor


class Setting(Generic[T]):
    """One ``LLM_GATEWAY_<NAME>``: its default, its parser (a ValueError or TypeError is a
    value the system check reports) and what it does (the line of the settings reference).
    ``name``: when it differs from the attribute's; ``fallback_env``: an environment variable
    read when the setting is unset; ``empty_is_default``: an empty string means unset."""

    def __init__(
        self,
        default: T,
        parse: Callable[[Any], T],
        doc: str,
        *,
        name: str = "",
        fallback_env: str = "",
        empty_is_default: bool = True,
    ) -> None:
        self.default, self.parse, self.__doc__ = default, parse, doc
        self.name, self.fallback_env, self.empty_is_default = name, fallback_env, empty_is_default

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = self.name or name

    @overload
    def __get__(self, settings: None, owner: type) -> Setting[T]: ...

    @overload
    def __get__(self, settings: Settings, owner: type) -> T: ...

    def __get__(self, settings: Settings | None, owner: type) -> T | Setting[T]:
        if settings is None:
            return self
        return settings.read(self)


class Settings:
    """Typed accessors for every setting the app reads.

    ``environ``: read that mapping alone, not Django's settings (before they exist)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._resolved: dict[str, Any] = {}
        self._environ = environ

    def reload(self) -> None:
        """Forget resolved values: the next read looks at settings and environment again."""
        self._resolved.clear()

    def raw(self, setting: Setting[Any]) -> Any:
        """The value as given, unparsed (``_MISSING``: unset)."""
        environ = os.environ if self._environ is None else self._environ
        key = PREFIX + setting.name
        value = _MISSING if self._environ is not None else getattr(django_settings, key, _MISSING)
        if value is _MISSING:
            value = environ.get(key, _MISSING)
        if value is _MISSING and setting.fallback_env:
            value = environ.get(setting.fallback_env, _MISSING)
        return value

    def read(self, setting: Setting[T]) -> T:
        try:
            return self._resolved[setting.name]
        except KeyError:
            pass
        value = self.raw(setting)
        unset = value is _MISSING or value is None or (value == "" and setting.empty_is_default)
        result = setting.default if unset else setting.parse(value)
        self._resolved[setting.name] = result
        return result

    # --- authentication -------------------------------------------------------------------
    API_KEYS = Setting[list[str]](
        [], parse_list, "Static keys (like vLLM's --api-key), compared by digest."
    )
    AUTH_PREFIXES = Setting[list[str]](
        ["/v1"], parse_list, "Path prefixes that need a key (a path equal to one, or below it)."
    )
    TRUSTED_PROXIES = Setting[list[ipaddress.IPv4Network | ipaddress.IPv6Network]](
        [],
        _parse_networks,
        "Addresses or networks (CIDR) of the reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: nobody's.",
    )
    ALLOW_UNAUTHENTICATED = Setting(
        False, parse_bool, "An open gateway: the relay serves requests without a key (W003)."
    )
    KEY_CACHE_SECONDS = Setting(
        0.5, positive(float), "How often each process re-reads its cached keys (revocations)."
    )
    LAST_USED_INTERVAL = Setting(60.0, float, "At most one last_used_at write per key this often.")

    # --- the relay ------------------------------------------------------------------------
    RELAY_PREFIX = Setting[str | None](
        "/v1",
        _parse_prefix,
        "Where the ASGI fast face serves the relay; off: every path goes to Django.",
    )
    POLICIES = Setting[list[str]](
        [], parse_list, "Dotted paths of extra policies, run after the built-in ones."
    )
    OBSERVERS = Setting[list[str]](
        [], parse_list, "Dotted paths of extra observers, told of every request at its end."
    )
    MAX_BODY_BYTES = Setting(32 * 1024 * 1024, positive(int), "A request body's size at most.")
    SEND_TIMEOUT = Setting(
        60.0,
        at_least_zero(float),
        "A client that reads nothing of its answer for this long is cut, its engine request "
        "closed (0: never; under daphne).",
    )

    # --- upstream -------------------------------------------------------------------------
    UPSTREAM_URL = Setting(
        "", lambda v: str(v).strip().rstrip("/"), "The engine's base URL, including /v1."
    )
    UPSTREAM_API_KEY = Setting("", str, "The key sent upstream (the client's never is).")
    UPSTREAMS_LIST = Setting[list[ReplicaSpec]](
        [],
        parse_replicas,
        "Several replicas: a list of objects, or JSON holding one.",
        name="UPSTREAMS",
    )
    ROUTING = Setting(
        "least_outstanding",
        one_of("least_outstanding", "round_robin", "prefix_affinity"),
        "How requests are spread over the replicas of a model.",
    )
    RETRIES = Setting(2, int, "Other replicas tried when one fails before the first byte.")
    AFFINITY_PREFIX_CHARS = Setting(
        2048, positive(int), "prefix_affinity: characters of the prompt's start hashed."
    )
    AFFINITY_LOAD_FACTOR = Setting(
        1.25, _parse_load_factor, "prefix_affinity: a replica's bound, in average loads (c)."
    )
    EJECT_FAILURES = Setting(3, positive(int), "Failures in a row that eject a replica.")
    EJECT_SECONDS = Setting(2.0, positive(float), "A replica's first ejection; each doubles it.")
    EJECT_MAX_SECONDS = Setting(60.0, positive(float), "The longest ejection.")
    UPSTREAM_REQUEST_ID_HEADER = Setting(
        "X-Request-Id",
        stripped,
        "The header carrying the request id upstream; empty: not sent (llama-cpp-python "
        "refuses an X-Request-Id that is not a UUID).",
        empty_is_default=False,
    )
    CONNECT_TIMEOUT = Setting(5.0, positive(float), "Seconds to connect to an engine.")
    READ_TIMEOUT = Setting(
        600.0, positive(float), "Longest silence between two reads (long prefills are normal)."
    )
    POOL_SIZE = Setting(0, int, "Open upstream connections per process at most (0: no limit).")

    # --- the scheduler (fair share of saturated engines) ----------------------------------
    SCHEDULER = Setting(
        True,
        parse_bool,
        "on: requests wait at the gateway while every replica of their model is saturated, "
        "dispatched by class and fair share; off: sent at once (costs nothing).",
    )
    QUEUE_MAX = Setting(1000, positive(int), "Requests waiting per model at most (queue_full).")
    QUEUE_TIMEOUT = Setting(
        60.0, positive(float), "Seconds a request may wait for a replica (queue_timeout)."
    )
    PRIORITY_AGING = Setting(
        30.0, positive(float), "Seconds of waiting that lift a request one class."
    )
    BATCH_HEADROOM = Setting(
        0,
        at_least_zero(int),
        "Slots of each replica's max_in_flight that batch requests leave free for interactive "
        "and default ones (an interactive request then need not wait for a batch one to end).",
    )
    FAIR_INPUT_WEIGHT = Setting(
        1.0, at_least_zero(float), "A prompt token's weight in the fair-share counters."
    )
    FAIR_OUTPUT_WEIGHT = Setting(
        2.0, at_least_zero(float), "An output token's weight in the fair-share counters."
    )
    FAIRNESS_BY = Setting(
        "owner",
        one_of("owner", "key", "team"),
        "The fair-share tenant: the key's owner (else the key), the key, or its team.",
    )
    ENGINE_METRICS_INTERVAL = Setting(
        1.0, positive(float), "Seconds between two reads of each engine's /metrics."
    )

    # --- limits ---------------------------------------------------------------------------
    REDIS_URL = Setting(
        "",
        _parse_redis_url,
        "The Redis every process shares limits in (default: the REDIS_URL environment "
        "variable): redis://host:6379/0, or through Sentinel "
        "redis+sentinel://host:26379,host2:26379/mymaster/0; empty: each process counts "
        "alone, in memory.",
        fallback_env="REDIS_URL",
    )
    REDIS_CLUSTER = Setting(
        False,
        parse_bool,
        "REDIS_URL names one node of a Redis Cluster: each script goes to its slot's master.",
    )
    LIMITS_FAIL = Setting(
        "open", one_of("open", "closed"), "Redis unreachable: open serves uncounted, closed 503."
    )
    LIMITS_TIMEOUT = Setting(0.5, positive(float), "Longest wait for Redis.")
    LIMITS_LEASE_SECONDS = Setting(
        30.0, positive(float), "A dead process's slot is free after this long."
    )
    LIMITS_DEFAULT_MAX_TOKENS = Setting(
        1024, int, "The completion tokens a request without max_tokens reserves."
    )
    LIMITS_NAMESPACE = Setting("llm_gateway", str, "Prefix of the limits' Redis keys.")

    # --- money ----------------------------------------------------------------------------
    CURRENCY = Setting(
        "USD", _parse_currency, "The currency of the price book, costs and money budgets."
    )

    # --- the self-service portal ----------------------------------------------------------
    PORTAL = Setting(
        True, parse_bool, "The key portal for every logged-in user (llm_gateway.portal.urls)."
    )
    PORTAL_MAX_KEYS_PER_USER = Setting(
        10,
        positive(int),
        "Usable keys a user may hold, made in the portal or not (a team's "
        "portal policy may set fewer).",
    )
    PORTAL_MAX_EXPIRY_DAYS = Setting(
        90,
        positive(int),
        "The longest life of a key made in the portal, in days (a team's "
        "portal policy may set less); every such key expires.",
    )
    PORTAL_API_URL = Setting(
        "",
        lambda v: str(v).strip().rstrip("/"),
        "The API's public base URL in the portal's examples (https://llm.example.com/v1); "
        "empty: this site's address and the relay's prefix.",
    )

    # --- realtime -------------------------------------------------------------------------
    WS_MAX_FRAME_BYTES = Setting(
        16 * 1024 * 1024, positive(int), "A larger realtime frame closes the session (1009)."
    )
    WS_IDLE_SECONDS = Setting(300.0, float, "An idle realtime session is closed (0: never).")

    # --- usage and the request log --------------------------------------------------------
    USAGE = Setting(True, parse_bool, "Token counts of every request (streams ask for usage).")
    UPSTREAM_CONTINUOUS_USAGE = Setting(
        False,
        parse_bool,
        "Streams ask for usage in every chunk (vLLM's continuous_usage_stats), stripped "
        "unless the client asked: a disconnect is then charged exactly.",
    )
    REQUEST_LOG = Setting(True, parse_bool, "One database row per request, written in batches.")
    REQUEST_LOG_QUEUE = Setting(
        50_000, positive(int), "Rows waiting for the database at most (past it: dropped)."
    )
    REQUEST_LOG_BATCH = Setting(500, positive(int), "Rows that wake the writer before its second.")

    # --- metrics --------------------------------------------------------------------------
    METRICS = Setting(True, parse_bool, "GET /metrics in Prometheus' format.")
    METRICS_TOKEN = Setting("", str, "When set, /metrics needs 'Authorization: Bearer <token>'.")
    METRICS_KEY_LABELS = Setting(
        False, parse_bool, "A key label on requests and tokens: one series per key, unbounded."
    )

    OTEL = Setting(
        "auto",
        one_of("auto", "on", "off"),
        "OpenTelemetry traces and GenAI metrics: auto (on when an OTLP endpoint is set in "
        "OTEL_EXPORTER_OTLP_*), on, or off (whatever the environment says).",
    )

    # --- logging --------------------------------------------------------------------------
    LOG_RESPONSES = Setting(False, parse_bool, "Log requests and response content (never keys).")
    LOG_MAX_CHARS = Setting(2048, positive(int), "Characters of logged content at most.")
    LOG_FORMAT = Setting("text", one_of("text", "json"), "text, or json: one object per line.")
    LOG_LEVEL = Setting(
        "INFO",
        one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", lower=False),
        "The level of the gateway's loggers.",
    )
    LOG_CONFIG_FILE = Setting(
        "", stripped, "A JSON logging dictConfig used instead of the gateway's own."
    )
    ACCESS_LOG = Setting(True, parse_bool, "One access line per request (llm_gateway.access).")
    DISABLE_ACCESS_LOG_FOR_ENDPOINTS = Setting[list[str]](
        [], parse_endpoints, "Paths whose access lines are dropped (/health,/metrics)."
    )

    # --- process --------------------------------------------------------------------------
    DRAIN_SECONDS = Setting(
        30.0, float, "On SIGTERM, how long requests in flight may run on before they are cut."
    )
    GC_FREEZE = Setting(True, parse_bool, "Freeze the start-up heap out of full collections.")
    UVLOOP = Setting(True, parse_bool, "The launcher runs daphne on uvloop when installed.")

    # --- watchdog -------------------------------------------------------------------------
    HEALTH_PATH = Setting(
        "", str, "Path probed on each engine's origin; empty: /health, else <url>/models."
    )
    WATCHDOG_INTERVAL = Setting(5.0, positive(float), "Seconds between two probes of a replica.")
    WATCHDOG_FAILURES = Setting(2, positive(int), "Failed probes in a row that declare it dead.")
    EXIT_ON_ENGINE_DEATH = Setting(
        False, parse_bool, "Stop the process (a drain) when an engine is declared dead."
    )

    # --- computed from the above ----------------------------------------------------------
    @property
    def UPSTREAMS(self) -> list[ReplicaSpec]:
        """The replicas: ``UPSTREAMS`` if set, else ``UPSTREAM_URL`` as a pool of one."""
        replicas = self.UPSTREAMS_LIST
        if replicas or not self.UPSTREAM_URL:
            return replicas
        return [ReplicaSpec(self.UPSTREAM_URL, None, self.UPSTREAM_API_KEY)]


def all_settings() -> dict[str, Setting[Any]]:
    """Every setting the app reads, by the attribute that reads it (the system check reads
    each one; the settings reference lists each one's ``LLM_GATEWAY_<name>``)."""
    return {name: value for name, value in vars(Settings).items() if isinstance(value, Setting)}


conf = Settings()
