"""The Django face alone: ``daphne project.asgi_django:application`` (settings_django)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings_django")
django_application = get_asgi_application()

from llm_gateway.asgi import ProxyHeadersMiddleware  # noqa: E402

# The client's address behind a reverse proxy (LLM_GATEWAY_TRUSTED_PROXIES).
application = ProxyHeadersMiddleware(django_application)  # type: ignore[arg-type]
