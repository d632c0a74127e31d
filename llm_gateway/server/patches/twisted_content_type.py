"""Under daphne, Twisted parses every request's Content-Type with the ``email`` package (about
13% of the gateway's CPU, docs/performance.md); the function is pure, so its results are
memoized."""

from __future__ import annotations

import functools

from .guard import require_method, require_version


def check() -> None:
    require_version("Twisted")
    from twisted.web import http

    # (Once memoized, its signature is still the original's: functools' wrapper says so.)
    require_method(http, "_parseContentType", "line")


def install() -> None:
    from twisted.web import http

    if hasattr(http._parseContentType, "cache_info"):
        return
    http._parseContentType = functools.lru_cache(maxsize=256)(http._parseContentType)
