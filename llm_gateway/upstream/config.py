"""The replicas from the settings: ``LLM_GATEWAY_UPSTREAMS`` (a list, or JSON holding one),
else ``LLM_GATEWAY_UPSTREAM_URL`` as a pool of one. Parsing raises ``ValueError`` on a value
that cannot be a replica list, which the system check reports at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

FIELDS = {
    "url",
    "models",
    "api_key",
    "weight",
    "name",
    "connect_timeout",
    "read_timeout",
    # the scheduler's (``load``): capacity, where its engine's load is read, thresholds
    "max_in_flight",
    "metrics_url",
    "queue_threshold",
    "kv_threshold",
    # what traces name its engine (gen_ai.provider.name); empty: as its /models says
    "provider",
}


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    url: str
    models: tuple[str, ...] | None = None  # None: discovered from its /models
    api_key: str = ""
    weight: float = 1.0
    name: str = ""
    connect_timeout: float | None = None  # None: LLM_GATEWAY_CONNECT_TIMEOUT
    read_timeout: float | None = None  # None: LLM_GATEWAY_READ_TIMEOUT
    max_in_flight: int | None = None  # requests of one process on it at most (None: no cap)
    metrics_url: str = ""  # empty: /metrics at its origin
    queue_threshold: float = 1.0  # engine's waiting requests that make it saturated
    kv_threshold: float = 0.9  # engine's KV cache use that makes it saturated
    provider: str = ""  # its engine kind for traces (vllm, sglang, llama.cpp); empty: found

    @property
    def label(self) -> str:
        return self.name or self.url


def parse_replicas(value: Any) -> list[ReplicaSpec]:
    if isinstance(value, (str, bytes)):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc.msg}") from None
    if not isinstance(value, list):
        raise ValueError("must be a list of replicas")
    return [_replica(entry, index) for index, entry in enumerate(value)]


def _replica(entry: Any, index: int) -> ReplicaSpec:
    where = f"replica {index}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not an object")
    unknown = set(entry) - FIELDS
    if unknown:
        raise ValueError(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    url = entry.get("url")
    if not isinstance(url, str) or not url:
        raise ValueError(f"{where} has no url")
    models = entry.get("models")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise ValueError(f"{where}: models must be a list of model names")
        models = tuple(models)
    weight = entry.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
        raise ValueError(f"{where}: weight must be a number above 0")
    timeouts = {}
    for name in ("connect_timeout", "read_timeout"):
        timeout = entry.get(name)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise ValueError(f"{where}: {name} must be a number of seconds above 0")
        timeouts[name] = float(timeout) if timeout is not None else None
    api_key, name = entry.get("api_key", ""), entry.get("name", "")
    metrics_url, provider = entry.get("metrics_url", ""), entry.get("provider", "")
    if not all(isinstance(v, str) for v in (api_key, name, metrics_url, provider)):
        raise ValueError(f"{where}: api_key, name, metrics_url and provider must be strings")
    if metrics_url and (problem := url_problem(metrics_url)):
        raise ValueError(f"{where}: metrics_url {problem}")
    max_in_flight = entry.get("max_in_flight")
    if max_in_flight is not None and (
        isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1
    ):
        raise ValueError(f"{where}: max_in_flight must be a whole number of requests above 0")
    queue_threshold = entry.get("queue_threshold", 1)
    if (
        isinstance(queue_threshold, bool)
        or not isinstance(queue_threshold, (int, float))
        or (queue_threshold < 1)
    ):
        raise ValueError(f"{where}: queue_threshold must be a number of requests, at least 1")
    kv_threshold = entry.get("kv_threshold", 0.9)
    if (
        isinstance(kv_threshold, bool)
        or not isinstance(kv_threshold, (int, float))
        or not (0 < kv_threshold <= 1)
    ):
        raise ValueError(f"{where}: kv_threshold must be a fraction above 0, at most 1")
    return ReplicaSpec(
        url.rstrip("/"),
        models,
        api_key,
        float(weight),
        name,
        **timeouts,
        max_in_flight=max_in_flight,
        metrics_url=metrics_url,
        queue_threshold=float(queue_threshold),
        kv_threshold=float(kv_threshold),
        provider=provider.strip(),
    )


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an engine's base URL, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    return None


def problems(replicas: list[ReplicaSpec]) -> list[str]:
    """What the system check reports: bad URLs, replicas that serve nothing, duplicates."""
    found = []
    seen_urls: set[str] = set()
    seen_names: set[str] = set()
    for index, replica in enumerate(replicas):
        if problem := url_problem(replica.url):
            found.append(f"replica {index} ({replica.url}): the url {problem}")
        if replica.models is not None and not replica.models:
            found.append(f"replica {index} ({replica.label}) serves no model (models is empty)")
        if replica.url in seen_urls:
            found.append(f"replica {index}: {replica.url} is listed twice")
        if replica.label in seen_names and replica.url not in seen_urls:
            found.append(f"replica {index}: the name {replica.label!r} is used twice")
        seen_urls.add(replica.url)
        seen_names.add(replica.label)
    return found
