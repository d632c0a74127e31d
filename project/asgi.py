"""ASGI entry point of the example project: ``daphne project.asgi:application``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_application = get_asgi_application()  # sets Django up before the imports below

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from llm_gateway.asgi import gateway_application  # noqa: E402
from llm_gateway.realtime import RealtimeRelay  # noqa: E402

# WebSocket routes: under /v1 they need a key (header or subprotocol) before the upgrade.
websocket_urlpatterns: list = [path("v1/realtime", RealtimeRelay())]  # type: ignore[arg-type]

application = gateway_application(
    ProtocolTypeRouter({"http": django_application, "websocket": URLRouter(websocket_urlpatterns)})
)
