"""System checks for the gateway's settings (``manage.py check``), ids llm_gateway.E/W00x."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from .conf import all_settings, conf
from .ingress.paths import is_guarded
from .upstream import config as upstream_config


@register(Tags.compatibility)
def check_values(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every setting can be read: a value that cannot be parsed fails here, at start-up."""
    errors: list[CheckMessage] = []
    for attribute, setting in all_settings().items():
        try:
            getattr(conf, attribute)
        except (TypeError, ValueError) as exc:
            errors.append(Error(f"LLM_GATEWAY_{setting.name}: {exc}.", id="llm_gateway.E003"))
    return errors


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if check_values():
        return []  # reported above; the checks below would only repeat it
    errors: list[CheckMessage] = []
    replicas = conf.UPSTREAMS
    if not replicas:
        errors.append(
            Warning(
                "LLM_GATEWAY_UPSTREAM_URL is not set: every /v1 request will answer 503.",
                hint="Set it to the engine's base URL including /v1, e.g. http://127.0.0.1:8001/v1"
                " (or LLM_GATEWAY_UPSTREAMS to a list of replicas).",
                id="llm_gateway.W001",
            )
        )
    elif not conf.UPSTREAMS_LIST and (problem := upstream_config.url_problem(replicas[0].url)):
        errors.append(
            Error(
                f"LLM_GATEWAY_UPSTREAM_URL {problem}, not {replicas[0].url!r}.",
                id="llm_gateway.E001",
            )
        )
    for problem in upstream_config.problems(replicas) if conf.UPSTREAMS_LIST else []:
        errors.append(Error(f"LLM_GATEWAY_UPSTREAMS: {problem}.", id="llm_gateway.E001"))
    for prefix in conf.AUTH_PREFIXES:
        if not prefix.startswith("/"):
            errors.append(
                Error(
                    f"LLM_GATEWAY_AUTH_PREFIXES entry {prefix!r} must start with '/'.",
                    id="llm_gateway.E002",
                )
            )
    if any(len(key) < 16 for key in conf.API_KEYS):
        errors.append(
            Warning(
                "A key in LLM_GATEWAY_API_KEYS is shorter than 16 characters.",
                hint="Use long random keys, or keys created with create_api_key.",
                id="llm_gateway.W002",
            )
        )
    return errors


def relay_prefixes() -> list[str]:
    """Where the relay answers: the fast face's prefix when this process serves the fast
    face (``gateway_application`` says so as it is built), and where ``llm_gateway.urls``
    put the Django face's ``v1/`` (if they are included)."""
    from django.apps import apps

    fast = getattr(apps.get_app_config("llm_gateway"), "fast_face", False)
    prefixes = [conf.RELAY_PREFIX] if conf.RELAY_PREFIX and fast else []
    with contextlib.suppress(NoReverseMatch):
        prefixes.append(reverse("llm_gateway:relay", kwargs={"sub_path": ""}).rstrip("/"))
    return prefixes


@register(Tags.security)
def check_relay_is_guarded(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if check_values():
        return []
    if conf.ALLOW_UNAUTHENTICATED:
        return [
            Warning(
                "LLM_GATEWAY_ALLOW_UNAUTHENTICATED is on: the relay serves requests without a key.",
                hint="Anyone who reaches the gateway can use the engines.",
                id="llm_gateway.W003",
            )
        ]
    return [
        Error(
            f"The relay at {prefix}/ is not under LLM_GATEWAY_AUTH_PREFIXES {conf.AUTH_PREFIXES}.",
            hint=f"Add {prefix} to LLM_GATEWAY_AUTH_PREFIXES. The relay refuses requests "
            "without a key anyway, but clients get 401s from a path the settings call open.",
            id="llm_gateway.E004",
        )
        for prefix in relay_prefixes()
        if not is_guarded(prefix + "/", conf.AUTH_PREFIXES)
    ]


@register(Tags.compatibility)
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """What in Django's request cycle would hurt the Django face's streams."""
    messages: list[CheckMessage] = []
    for path in getattr(settings, "MIDDLEWARE", []):
        if path == "django.middleware.gzip.GZipMiddleware":
            messages.append(
                Warning(
                    "GZipMiddleware compresses streaming responses: SSE events are held back "
                    "in the compressor instead of reaching the client as they come.",
                    hint="Remove it, or compress at the reverse proxy with buffering off.",
                    id="llm_gateway.W004",
                )
            )
            continue
        try:
            middleware = import_string(path)
        except ImportError:
            continue  # Django's own checks report it
        if not getattr(middleware, "async_capable", False):
            messages.append(
                Warning(
                    f"{path} is sync-only: under ASGI every request through Django pays a "
                    "thread hop for it, the relay views included.",
                    hint="Use an async-capable middleware (async_capable = True).",
                    id="llm_gateway.W005",
                )
            )
    return messages


@register(Tags.compatibility)
def check_tracing(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Tracing asked for (an OTLP endpoint, or LLM_GATEWAY_OTEL=on) needs the SDK."""
    if check_values():
        return []
    from .observe.tracing import TracingOptions

    if not TracingOptions.from_environ(conf.OTEL, os.environ).enabled:
        return []
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
        import opentelemetry.sdk  # noqa: F401
    except ImportError as exc:
        return [
            Error(
                f"OpenTelemetry is configured (OTEL_EXPORTER_OTLP_* or LLM_GATEWAY_OTEL=on) "
                f"but its SDK cannot be imported: {exc}.",
                hint="pip install 'llm-gateway[otel]', or set LLM_GATEWAY_OTEL=off.",
                id="llm_gateway.E008",
            )
        ]
    return []


@register(Tags.compatibility)
def check_audit_trail(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Changes to keys, limits, prices and portal policies are recorded by django-auditlog:
    without its app nothing would be, silently."""
    from django.apps import apps

    if apps.is_installed("auditlog"):
        return []
    return [
        Error(
            "The audit trail needs django-auditlog's app: 'auditlog' is not in INSTALLED_APPS, "
            "so changes to keys, limits, prices and portal policies would go unrecorded.",
            hint="Add 'auditlog' to INSTALLED_APPS and run manage.py migrate.",
            id="llm_gateway.E009",
        )
    ]


@register(Tags.urls)
def check_portal(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The portal's pages (where they are included) need Django's sessions and users."""
    try:
        reverse("llm_gateway_portal:keys")
    except NoReverseMatch:
        return []
    needed = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ]
    missing = [name for name in needed if name not in settings.MIDDLEWARE]
    if not missing:
        return []
    return [
        Error(
            f"llm_gateway.portal.urls is included, but MIDDLEWARE lacks {', '.join(missing)}: "
            "its pages need a logged-in user and CSRF on every form.",
            id="llm_gateway.E011",
        )
    ]


def refuse_bad_settings() -> None:
    """Raise ImproperlyConfigured if the gateway's system checks find an error: servers do
    not run checks (daphne, uvicorn), so the launcher and ``gateway_application()`` do, and a
    value that cannot be read stops the start-up instead of failing each request."""
    from django.core.checks import ERROR, run_checks
    from django.core.exceptions import ImproperlyConfigured

    errors = [
        message
        for message in run_checks()
        if message.level >= ERROR and (message.id or "").startswith("llm_gateway.")
    ]
    if errors:
        raise ImproperlyConfigured("\n".join(str(error) for error in errors))
