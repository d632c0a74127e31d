"""An example of a project's own view guarded by the gateway's keys."""

from django.http import HttpRequest, JsonResponse

from llm_gateway.decorators import api_key_required


@api_key_required
async def whoami(request: HttpRequest) -> JsonResponse:
    """The caller's key (never its secret) and the request id."""
    key = request.api_key  # type: ignore[attr-defined]
    return JsonResponse(
        {
            "key": {"id": key.id, "name": key.name, "prefix": key.prefix},
            "request_id": getattr(request, "request_id", None),
        }
    )
