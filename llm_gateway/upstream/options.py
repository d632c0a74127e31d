"""The upstream side's options, as values: the runtime builds them from the settings
(``conf``); tests build their own. Nothing here reads a setting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BreakerOptions:
    """Passive health (``breaker``): failures in a row that eject a replica, and for how long."""

    eject_failures: int = 3
    eject_seconds: float = 2.0  # the first cooldown; each new ejection doubles it
    eject_max_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class WatchdogOptions:
    """Active health (``health``): the probe's interval, failures that declare a replica
    dead, and the path probed (empty: ``/health``, else ``<url>/models``)."""

    interval: float = 5.0
    failures: int = 2
    health_path: str = ""
    discovery_seconds: float = 60.0  # how often a replica's /models is read again


@dataclass(frozen=True, slots=True)
class UpstreamOptions:
    """What every replica's client shares; a replica's own timeouts override these."""

    connect_timeout: float = 5.0
    read_timeout: float = 600.0  # longest silence between two reads: long prefills are normal
    pool_size: int = 0  # open connections per process at most (0: no limit)
    watchdog: WatchdogOptions = field(default_factory=WatchdogOptions)
    breaker: BreakerOptions = field(default_factory=BreakerOptions)
    # The engines' own load (``load``): read only while the scheduler is on, this often.
    read_engine_metrics: bool = False
    engine_metrics_interval: float = 1.0
    # Called with the replica's name when its watchdog declares it dead (the runtime may
    # stop the process: LLM_GATEWAY_EXIT_ON_ENGINE_DEATH). Never at import, never blocking.
    on_dead: Callable[[str], None] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class PoolOptions:
    routing: str = "least_outstanding"  # least_outstanding, round_robin or prefix_affinity
    load_factor: float = 1.25  # prefix_affinity: a replica's bound, in average loads
