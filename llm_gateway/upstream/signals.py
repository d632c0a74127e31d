"""An engine's load, read from its own Prometheus text (``/metrics``), recognised by engine.

- vLLM: ``vllm:num_requests_waiting``, ``vllm:num_requests_running`` (summed over the
  ``engine`` label: one per data-parallel rank) and ``vllm:kv_cache_usage_perc`` (before
  v0.10: ``vllm:gpu_cache_usage_perc``), the mean over the ranks, since vLLM balances its
  ranks itself.
- SGLang: ``sglang:num_queue_reqs``, ``sglang:num_running_reqs``, ``sglang:token_usage``.
- llama.cpp's ``llama-server --metrics``: ``llamacpp:requests_deferred`` (waiting),
  ``llamacpp:requests_processing`` (running), ``llamacpp:kv_cache_usage_ratio`` where the
  build has it.

The text is parsed by prometheus_client's own parser (off the request path: once a second
per replica). Text that names none of these is no signal (``None``), not an idle engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True, slots=True)
class EngineLoad:
    engine: str  # vllm | sglang | llamacpp
    waiting: float  # requests queued inside the engine
    running: float  # requests in its running batch
    kv_usage: float | None  # the fraction of its KV cache in use, where it says


# engine: (waiting, running, KV use names in the order tried)
ENGINES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "vllm": (
        "vllm:num_requests_waiting",
        "vllm:num_requests_running",
        ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    ),
    "sglang": ("sglang:num_queue_reqs", "sglang:num_running_reqs", ("sglang:token_usage",)),
    "llamacpp": (
        "llamacpp:requests_deferred",
        "llamacpp:requests_processing",
        ("llamacpp:kv_cache_usage_ratio",),
    ),
}
_WANTED = frozenset(
    name for waiting, running, kv in ENGINES.values() for name in (waiting, running, *kv)
)


def parse_load(text: str) -> EngineLoad | None:
    """The load in an engine's ``/metrics`` text, or None when it is no engine's we know.
    A malformed text raises ``ValueError`` (the caller counts it as no reading)."""
    values: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _WANTED:
                values.setdefault(sample.name, []).append(float(sample.value))
    for engine, (waiting, running, kv_names) in ENGINES.items():
        if waiting not in values and running not in values:
            continue
        kv = next((values[name] for name in kv_names if name in values), None)
        return EngineLoad(
            engine,
            sum(values.get(waiting, ())),
            sum(values.get(running, ())),
            sum(kv) / len(kv) if kv else None,
        )
    return None
