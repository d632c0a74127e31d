"""Process tuning once the server runs: ``gc.freeze()`` of the start-up heap, as vLLM does
(measured in docs/performance.md): the full collections otherwise walk Django's whole
start-up heap (30-60 ms pauses, the c=1 p99 spikes); frozen objects are skipped."""

from __future__ import annotations

import gc


def freeze_startup_heap(enabled: bool = True) -> None:
    if enabled:
        gc.collect()
        gc.freeze()
