"""An application that fails after its answer began, behind the gateway's ASGI face: served by
daphne in the reaper's end-to-end test (server.patches.daphne_reaper)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_application = get_asgi_application()

from llm_gateway.asgi import gateway_application  # noqa: E402


async def fails_late(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "http" and scope["path"] == "/late-error":
        start = {"type": "http.response.start", "status": 200, "headers": []}
        await send(start)
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("the application failed after its first byte")
    await django_application(scope, receive, send)


application = gateway_application(fails_late)
