"""The Django face's middleware, for ``MIDDLEWARE``: request id, API key, engine errors.

Each is async-capable and sync-capable (django-cors-headers' pattern: the mode is chosen once
in ``__init__``), and behaves as its ASGI counterpart does: the same X-Request-Id rules, the
same guarded prefixes, the same 401 body and ``WWW-Authenticate``, and every ``GatewayError``
raised in a view answered as OpenAI-shaped JSON. Where the ASGI face already ran (the example
project has both), they reuse its result: the key is checked once.

    MIDDLEWARE = [
        "llm_gateway.middleware.RequestIdMiddleware",
        "llm_gateway.middleware.EngineErrorMiddleware",
        "llm_gateway.middleware.ApiKeyMiddleware",
        ...,
    ]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from .core.request import Principal
from .errors import GatewayError, InvalidRequestError, ServerErrorLog
from .ingress.request_id import SCOPE_KEY as REQUEST_ID_KEY
from .ingress.request_id import choose, request_id_var
from .keys import SCOPE_KEY
from .runtime import Runtime, get_runtime

GetResponse = Callable[[HttpRequest], Any]


def error_response(error: GatewayError) -> HttpResponse:
    """A GatewayError as Django's answer: the same body and headers as the ASGI face's."""
    response = HttpResponse(error.json(), status=error.status, content_type="application/json")
    for name, value in error.headers():
        response[name.decode("latin-1")] = value.decode("latin-1")
    return response


def request_headers(request: HttpRequest) -> list[tuple[bytes, bytes]]:
    """The request's headers as ASGI gives them (lower-case names, bytes, duplicates kept)."""
    scope = getattr(request, "scope", None)
    if scope is not None:
        return list(scope["headers"])
    return [
        (name[5:].replace("_", "-").lower().encode("latin-1"), str(value).encode("latin-1"))
        for name, value in request.META.items()
        if name.startswith("HTTP_")
    ]


def known_principal(request: HttpRequest) -> Principal | None:
    """The key already checked for this request: by the ASGI face, or by this face."""
    scope = getattr(request, "scope", None)
    principal = scope.get(SCOPE_KEY) if scope is not None else None
    return principal or getattr(request, "api_key", None)


async def principal_of(
    request: HttpRequest, runtime: Runtime, required: bool = True
) -> Principal | None:
    """The Django face's one fail-closed helper: the request's checked key, else checked
    here when ``required`` (a 401 ``GatewayError`` if it is missing or wrong). Sets
    ``request.api_key``."""
    principal = known_principal(request)
    if principal is None and required:
        principal = await runtime.authenticator.authenticate(request_headers(request))
    request.api_key = principal  # type: ignore[attr-defined]
    return principal


def principal_of_sync(
    request: HttpRequest, runtime: Runtime, required: bool = True
) -> Principal | None:
    """``principal_of`` for sync code: a thread hop only when the key must be checked."""
    if known_principal(request) is None and required:
        return async_to_sync(principal_of)(request, runtime, required)
    principal = known_principal(request)
    request.api_key = principal  # type: ignore[attr-defined]
    return principal


class _Middleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)  # type: ignore[type-var]


class RequestIdMiddleware(_Middleware):
    """``request.request_id`` and the ``X-Request-Id`` of the response (one, always)."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        request_id = self._choose(request)
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-Id"] = request_id
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = self._choose(request)
        token = request_id_var.set(request_id)
        try:
            response = await self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-Id"] = request_id
        return response

    @staticmethod
    def _choose(request: HttpRequest) -> str:
        scope = getattr(request, "scope", None)
        request_id = scope.get(REQUEST_ID_KEY) if scope is not None else None
        if request_id is None:
            incoming = request.META.get("HTTP_X_REQUEST_ID")
            request_id = choose(incoming.encode("latin-1") if incoming is not None else None)
        request.request_id = request_id  # type: ignore[attr-defined]
        return request_id


class ApiKeyMiddleware(_Middleware):
    """Checks the bearer key under the guarded prefixes (the API's paths); sets
    ``request.api_key``. There, a Host outside ``ALLOWED_HOSTS`` is an OpenAI error too
    (400 ``invalid_host``), not Django's HTML page."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        runtime = get_runtime()
        try:
            guarded = self._guarded(request, runtime)
            principal_of_sync(request, runtime, guarded)
        except GatewayError as exc:
            return error_response(exc)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        runtime = get_runtime()
        try:
            await principal_of(request, runtime, self._guarded(request, runtime))
        except GatewayError as exc:
            return error_response(exc)
        response: HttpResponseBase = await self.get_response(request)
        return response

    @staticmethod
    def _guarded(request: HttpRequest, runtime: Runtime) -> bool:
        if not runtime.authenticator.needs_auth(request.method, request.path_info):
            return False
        try:
            request.get_host()  # what Django's CommonMiddleware would refuse, as HTML
        except DisallowedHost:
            raise InvalidRequestError(
                "The Host header names a host this server does not serve.",
                param=None,
                code="invalid_host",
            ) from None
        return True


class EngineErrorMiddleware(_Middleware):
    """A ``GatewayError`` raised in any view becomes its OpenAI-shaped JSON answer."""

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        self.log_server_error = ServerErrorLog()

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        response: HttpResponseBase | Awaitable[HttpResponseBase] = self.get_response(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, GatewayError):
            return None
        if exception.status >= 500:
            self.log_server_error(request.method or "-", request.path, exception)
        return error_response(exception)
