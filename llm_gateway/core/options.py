"""The core's options, as values: the runtime builds them from the settings (``conf``), tests
build their own. The core reads no setting itself."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RelayOptions:
    # Token counts of every request (streams ask the engine for usage).
    usage: bool = True
    # Streams ask for usage in every chunk (vLLM's ``continuous_usage_stats``).
    continuous_usage: bool = False
    # An open gateway: requests without a key reach the engine.
    allow_unauthenticated: bool = False
    # Other replicas tried when one fails before the first byte.
    retries: int = 2
    # ``prefix_affinity``: characters of the prompt's start that choose the replica.
    affinity_prefix_chars: int = 2048
    # The header that carries the request id upstream; empty: not sent.
    request_id_header: str = "X-Request-Id"
