"""The one shared HTTP client to the engine, and the engine errors it raises.

One ``aiohttp.ClientSession`` per process and event loop, created on first use (never at
import), pooled with keep-alive, closed at shutdown. aiohttp rather than httpx: measured in
``docs/performance.md`` (httpx's pool slows down under concurrency). Timeouts: connect, and
the longest silence between two reads; no total cap, so long streams are never cut.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .conf import conf
from .errors import EngineDeadError, EngineGenerateError, EngineTimeoutError

logger = logging.getLogger(__name__)

# A pooled connection the engine closed while idle fails on reuse before any answer; such a
# request never reached the engine, so it is sent once more on a fresh connection.
_STALE_CONNECTION_ERRORS = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class Upstream:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def base_url(self) -> str:
        url = conf.UPSTREAM_URL
        if not url:
            raise EngineDeadError(
                "No upstream engine is configured (LLM_GATEWAY_UPSTREAM_URL).",
                code="engine_not_configured",
            )
        return url

    def origin(self) -> str:
        parts = urlsplit(self.base_url())
        return f"{parts.scheme}://{parts.netloc}"

    def session(self) -> aiohttp.ClientSession:
        session = self._session
        loop = asyncio.get_running_loop()
        if session is None or self._loop is not loop or session.closed:
            self._loop = loop
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=conf.POOL_SIZE, keepalive_timeout=30, enable_cleanup_closed=False
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=conf.CONNECT_TIMEOUT, sock_read=conf.READ_TIMEOUT
                ),
                auto_decompress=False,  # bytes pass through as the engine sent them
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
                raise_for_status=False,
            )
        return session

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request; connection failures become EngineDeadError, timeouts 504."""
        session = self.session()
        kwargs: dict[str, Any] = {"headers": headers, "data": body, "allow_redirects": False}
        if timeout is not None:
            kwargs["timeout"] = timeout
        for attempt in (1, 2):
            try:
                return await session.request(method, url, **kwargs)
            except aiohttp.ClientConnectorError as exc:
                raise EngineDeadError(f"Cannot connect to the engine: {exc.strerror}.") from exc
            except _STALE_CONNECTION_ERRORS as exc:
                if attempt == 2:
                    raise EngineGenerateError(
                        "The engine closed the connection before answering."
                    ) from exc
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise EngineTimeoutError("The engine did not answer in time.") from exc
            except aiohttp.ClientError as exc:
                raise EngineGenerateError(
                    f"Upstream request failed: {type(exc).__name__}."
                ) from exc
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


upstream = Upstream()
