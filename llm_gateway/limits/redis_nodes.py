"""Which connection a ``REDIS_URL`` names: one server, a master found through Sentinel, or
the masters of a Redis Cluster (each with the same ``evalsha`` and ``close``)."""

from __future__ import annotations

from .redis_client import RedisConnection, Script
from .redis_cluster import ClusterConnection
from .redis_sentinel import SCHEMES, SentinelConnection


def connection_for(
    url: str, timeout: float, scripts: tuple[Script, ...], cluster: bool = False
) -> RedisConnection | ClusterConnection:
    if cluster:
        return ClusterConnection(url, timeout, scripts)
    if url.startswith(tuple(f"{scheme}://" for scheme in SCHEMES)):
        return SentinelConnection(url, timeout, scripts)
    return RedisConnection(url, timeout, scripts)
