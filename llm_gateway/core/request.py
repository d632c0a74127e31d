"""The values the core takes and gives: a request, and a reply with an async body."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..keystore import Principal


@dataclass(slots=True)
class GatewayRequest:
    """One client request as the core sees it, whichever face it came through."""

    method: str
    path: str  # below the relay prefix, canonical: "/chat/completions"
    query: bytes
    headers: list[tuple[bytes, bytes]]  # names lower-case, as ASGI gives them
    body: bytes
    request_id: str
    api_key: Principal | None  # None: not authenticated (refused unless the gateway is open)
    client: str | None = None  # the client's address
    payload: dict[str, Any] | None = field(default=None)  # the JSON body, once parsed


class Reply:
    """Status, headers, then either the whole ``content`` or the ``chunks`` as they come.

    The face sends it and then always awaits ``aclose()`` (in ``finally``): that closes the
    upstream answer if it was not read to its end, and tells the observers how it ended.
    """

    __slots__ = ("status", "headers", "content", "chunks", "_on_close")

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        *,
        content: bytes | None = None,
        chunks: AsyncIterator[bytes] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.content = content
        self.chunks = chunks
        self._on_close = on_close

    async def aclose(self) -> None:
        chunks = self.chunks
        if chunks is not None and hasattr(chunks, "aclose"):
            await chunks.aclose()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
