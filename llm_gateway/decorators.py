"""``@api_key_required``: a project's own views, guarded by the gateway's keys.

    @api_key_required
    async def my_view(request):
        return JsonResponse({"caller": request.api_key.name})

Works on async and sync views. A key already checked (by the ASGI face or by
``ApiKeyMiddleware``) is not checked again; otherwise the view checks it, with the same 401
answers as the relay.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import async_to_sync, iscoroutinefunction

from .authentication import authenticate
from .errors import GatewayError
from .middleware import asgi_principal, error_response, request_headers

View = TypeVar("View", bound=Callable[..., Any])


def api_key_required(view: View) -> View:
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def guarded(request: Any, *args: Any, **kwargs: Any) -> Any:
            principal = asgi_principal(request) or getattr(request, "api_key", None)
            if principal is None:
                try:
                    principal = await authenticate(request_headers(request))
                except GatewayError as exc:
                    return error_response(exc)
            request.api_key = principal
            return await view(request, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    @functools.wraps(view)
    def guarded_sync(request: Any, *args: Any, **kwargs: Any) -> Any:
        principal = asgi_principal(request) or getattr(request, "api_key", None)
        if principal is None:
            try:
                principal = async_to_sync(authenticate)(request_headers(request))
            except GatewayError as exc:
                return error_response(exc)
        request.api_key = principal
        return view(request, *args, **kwargs)

    return guarded_sync  # type: ignore[return-value]
