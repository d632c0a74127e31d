"""The engines behind the gateway, framework-free: one client per replica, the one mapping of
their failures to gateway errors, their health, and the pool the core picks from. Options
arrive as values (``options``); aiohttp is used here and nowhere else in the core."""

from .client import Answer, Upstream
from .config import ReplicaSpec, parse_replicas
from .options import BreakerOptions, PoolOptions, UpstreamOptions, WatchdogOptions
from .pool import Lease, UpstreamPool

__all__ = [
    "Answer",
    "BreakerOptions",
    "Lease",
    "PoolOptions",
    "ReplicaSpec",
    "Upstream",
    "UpstreamOptions",
    "UpstreamPool",
    "WatchdogOptions",
    "parse_replicas",
]
