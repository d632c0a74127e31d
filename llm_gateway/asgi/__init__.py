"""The gateway's ASGI face, wrapped around a project's own ASGI application.

    application = gateway_application(get_asgi_application())

Every request passes the proxy headers (believed from ``LLM_GATEWAY_TRUSTED_PROXIES``
only), X-Request-Id, the access log, error rendering, then the key check; then
the relay prefix (``LLM_GATEWAY_RELAY_PREFIX``, ``/v1``) goes to the relay core and
everything else (admin, /health, the project's views) to the wrapped application.
"""

from __future__ import annotations

from collections.abc import Callable

from ..ingress.types import ASGIApp
from ..runtime import Runtime, get_runtime
from .access_log import AccessLogMiddleware
from .auth import AuthMiddleware
from .errors import ErrorMiddleware
from .proxy_headers import ProxyHeadersMiddleware
from .request_id import RequestIdMiddleware
from .router import GatewayRouter


def gateway_application(fallback: ASGIApp, runtime: Runtime | None = None) -> ASGIApp:
    """Wrap a project's ASGI app with the gateway: the relay and its middleware.

    ``runtime``: this process's (``get_runtime()``, rebuilt after a setting changed) unless
    one is given (tests). Building it checks the gateway's settings, with the fast face's
    prefix among the guarded ones (an error stops the start-up); it has no other side
    effect: the server's patches are installed when daphne loads the app
    (``llm_gateway.server``), never here.
    """
    from django.apps import apps

    from ..checks import refuse_bad_settings

    apps.get_app_config("llm_gateway").fast_face = True  # type: ignore[attr-defined]
    refuse_bad_settings()
    source: Callable[[], Runtime] = get_runtime if runtime is None else (lambda: runtime)
    return ProxyHeadersMiddleware(
        RequestIdMiddleware(
            AccessLogMiddleware(
                ErrorMiddleware(AuthMiddleware(GatewayRouter(fallback, source), source))
            )
        )
    )


__all__ = ["ProxyHeadersMiddleware", "gateway_application"]
