"""The values the core takes and gives: who asks, a request, and a reply with an async body."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .priority import FairShare


class Stall:
    """Whether the server cut this request's client for reading nothing for too long
    (``LLM_GATEWAY_SEND_TIMEOUT``): the request then ends ``client_stalled``. The exchange
    puts one in its request's context (``CLIENT_STALL``); the server, whose ``send`` runs
    in that context, marks it. A holder, not a flag: whichever task closes the answer later
    reads the same one."""

    __slots__ = ("stalled",)

    def __init__(self) -> None:
        self.stalled = False


CLIENT_STALL: ContextVar[Stall | None] = ContextVar("llm_gateway_client_stall", default=None)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the request: an API key (``id`` None for a static key from the settings).

    ``scopes`` is what the policies know of it (the limits' holders, read with the key); the
    core carries it and never reads it, so it depends on no policy.
    """

    id: int | None
    name: str
    prefix: str
    scopes: tuple[Any, ...] = ()
    team: str = ""  # the key's team (a group's name), for the request log
    owner: str = ""  # the key's owner (a username), for the request log
    fair: FairShare | None = None  # its class, cap and tenants, for the scheduler


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

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header (``name`` lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


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
