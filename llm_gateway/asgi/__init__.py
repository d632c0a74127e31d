"""The gateway's ASGI face, wrapped around a project's own ASGI application.

    application = gateway_application(get_asgi_application())

Every request passes the proxy headers (believed from ``LLM_GATEWAY_TRUSTED_PROXIES``
only), X-Request-Id, the access log, error rendering, then the key check; then
the relay prefix (``LLM_GATEWAY_RELAY_PREFIX``, ``/v1``) goes to the relay core and
everything else (admin, /health, the project's views) to the wrapped application.
"""

from __future__ import annotations

from ..gateway import refuse_bad_settings
from ..types import ASGIApp
from .access_log import AccessLogMiddleware
from .auth import AuthMiddleware
from .errors import ErrorMiddleware
from .proxy_headers import ProxyHeadersMiddleware
from .request_id import RequestIdMiddleware
from .router import GatewayRouter


def gateway_application(fallback: ASGIApp) -> ASGIApp:
    """Wrap a project's ASGI app with the gateway: the relay and its middleware.

    Building it checks the gateway's settings (an error stops the start-up) and has no other
    side effect: process tuning (``gc.freeze``, Twisted patches) belongs to the launcher,
    ``python -m llm_gateway.run``.
    """
    refuse_bad_settings()
    return ProxyHeadersMiddleware(
        RequestIdMiddleware(
            AccessLogMiddleware(ErrorMiddleware(AuthMiddleware(GatewayRouter(fallback))))
        )
    )


__all__ = ["ProxyHeadersMiddleware", "gateway_application"]
