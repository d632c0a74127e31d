"""The Django face alone: ``daphne project.asgi_django:application`` (settings_django).

HTTP goes to Django (the API under /llm/v1, through the gateway's MIDDLEWARE); WebSockets to
the realtime relay at /llm/v1/realtime (it checks the key itself, before accepting), any
other WebSocket path is refused at the handshake."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings_django")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from llm_gateway.asgi import ProxyHeadersMiddleware  # noqa: E402
from llm_gateway.asgi.errors import ErrorMiddleware  # noqa: E402
from llm_gateway.realtime import RealtimeRelay  # noqa: E402

websocket = ErrorMiddleware(URLRouter([path("llm/v1/realtime", RealtimeRelay())]))  # type: ignore[arg-type]
# The client's address behind a reverse proxy (LLM_GATEWAY_TRUSTED_PROXIES).
application = ProxyHeadersMiddleware(
    ProtocolTypeRouter({"http": django_application, "websocket": websocket})
)
