"""An API-only process of the example project, served by the Django face.

Only the gateway's middleware: Django's own (sessions, CSRF, auth, messages, ...) are
``MiddlewareMixin`` classes, which under ASGI run each hook through ``sync_to_async``, a
thread hop; together they cost more than the whole relay (docs/performance.md). The admin
runs in processes with ``project.settings`` (same database); these serve ``/llm/v1``.
"""

from .settings_django import *  # noqa: F403
from .settings_django import INSTALLED_APPS

INSTALLED_APPS = [
    app
    for app in INSTALLED_APPS
    if app not in ("django.contrib.admin", "django.contrib.sessions", "django.contrib.messages")
]
ROOT_URLCONF = "project.urls_api"
MIDDLEWARE = [
    "llm_gateway.middleware.RequestIdMiddleware",
    "llm_gateway.middleware.EngineErrorMiddleware",
    "llm_gateway.middleware.ApiKeyMiddleware",
]
