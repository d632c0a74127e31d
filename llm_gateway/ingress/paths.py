"""Which application path a request is for, decided from the ASGI scope alone.

The auth guard and the /v1 router both call these functions, so a path can never be
routed to the relay without having been checked. The path comes from ``scope["path"]``
(already percent-decoded by the server), never from the Host header: vLLM's middleware
rebuilt the URL from Host, and ``Host: localhost/health?`` then skipped its check.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from .types import Scope


def script_prefix(scope: Scope) -> str:
    """The mount prefix, chosen the way Django's ASGIRequest chooses it."""
    return (getattr(settings, "FORCE_SCRIPT_NAME", None) or scope.get("root_path") or "").rstrip(
        "/"
    )


def app_path(scope: Scope) -> str:
    """The request path with the script prefix removed (when it is there)."""
    path: str = scope.get("path") or "/"
    prefix = script_prefix(scope)
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix) :] or "/"
    return path


def canonical(path: str) -> str:
    """Collapse repeated slashes and resolve ``.``/``..`` segments (RFC 3986, 5.2.4)."""
    if "//" not in path and "/." not in path:
        return path if path.startswith("/") else "/" + path
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def is_under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/") or not prefix


def is_guarded(path: str, prefixes: Iterable[str]) -> bool:
    """Guarded if the path as sent or its canonical form is under any prefix (fail closed)."""
    normal = canonical(path)
    return any(is_under(path, p) or is_under(normal, p) for p in prefixes)
