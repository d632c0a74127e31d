"""System checks for the gateway's settings (``manage.py check``), ids llm_gateway.E/W00x."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import conf

_POSITIVE = (
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "MAX_BODY_BYTES",
    "KEY_CACHE_SECONDS",
    "WATCHDOG_INTERVAL",
    "WATCHDOG_FAILURES",
)


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    url = conf.UPSTREAM_URL
    if not url:
        errors.append(
            Warning(
                "LLM_GATEWAY_UPSTREAM_URL is not set: every /v1 request will answer 503.",
                hint="Set it to the engine's base URL including /v1, e.g. http://127.0.0.1:8001/v1.",
                id="llm_gateway.W001",
            )
        )
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append(
                Error(
                    f"LLM_GATEWAY_UPSTREAM_URL must be an http(s) URL, not {url!r}.",
                    id="llm_gateway.E001",
                )
            )
        elif parts.query or parts.fragment:
            errors.append(
                Error(
                    "LLM_GATEWAY_UPSTREAM_URL must not have a query or fragment.",
                    id="llm_gateway.E001",
                )
            )
    for prefix in conf.AUTH_PREFIXES:
        if not prefix.startswith("/"):
            errors.append(
                Error(
                    f"LLM_GATEWAY_AUTH_PREFIXES entry {prefix!r} must start with '/'.",
                    id="llm_gateway.E002",
                )
            )
    for name in _POSITIVE:
        try:
            value = getattr(conf, name)
        except (TypeError, ValueError):
            errors.append(Error(f"LLM_GATEWAY_{name} must be a number.", id="llm_gateway.E003"))
            continue
        if value <= 0:
            errors.append(Error(f"LLM_GATEWAY_{name} must be above 0.", id="llm_gateway.E003"))
    if any(len(key) < 16 for key in conf.API_KEYS):
        errors.append(
            Warning(
                "A key in LLM_GATEWAY_API_KEYS is shorter than 16 characters.",
                hint="Use long random keys, or keys created with create_api_key.",
                id="llm_gateway.W002",
            )
        )
    return errors
