"""Process-level tuning, applied by the launcher (``llm_gateway.run``) once daphne runs.

Both measured in docs/performance.md:
- ``gc.freeze()`` after start-up, as vLLM does: the full collections otherwise walk Django's
  whole start-up heap (30-60 ms pauses, the c=1 p99 spikes); frozen objects are skipped.
- Under daphne, Twisted parses every request's Content-Type with the ``email`` package (about
  13% of the gateway's CPU); the function is pure, so its results are memoized.
"""

from __future__ import annotations

import functools
import gc
import sys

from .conf import conf


def freeze_startup_heap() -> None:
    if conf.GC_FREEZE:
        gc.collect()
        gc.freeze()


def memoize_twisted_content_type() -> None:
    module = sys.modules.get("twisted.web.http")
    parse = getattr(module, "_parseContentType", None)
    if module is None or parse is None or hasattr(parse, "cache_info"):
        return
    module._parseContentType = functools.lru_cache(maxsize=256)(parse)  # type: ignore[attr-defined]


def tune_process() -> None:
    freeze_startup_heap()
    memoize_twisted_content_type()
