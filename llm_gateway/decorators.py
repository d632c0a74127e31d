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

from asgiref.sync import iscoroutinefunction

from .errors import GatewayError
from .middleware import error_response, principal_of, principal_of_sync
from .runtime import get_runtime

View = TypeVar("View", bound=Callable[..., Any])


def api_key_required(view: View) -> View:
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def guarded(request: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                await principal_of(request, get_runtime())
            except GatewayError as exc:
                return error_response(exc)
            return await view(request, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    @functools.wraps(view)
    def guarded_sync(request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            principal_of_sync(request, get_runtime())
        except GatewayError as exc:
            return error_response(exc)
        return view(request, *args, **kwargs)

    return guarded_sync  # type: ignore[return-value]
