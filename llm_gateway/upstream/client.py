"""One engine replica: its URL and key, its HTTP client sessions, and its answers.

One ``aiohttp.ClientSession`` per event loop, created on first use (never at import), pooled
with keep-alive, closed at shutdown. aiohttp rather than httpx: measured in
``docs/performance.md`` (httpx's pool slows down under concurrency). Timeouts: connect, and
the longest silence between two reads; no total cap, so long streams are never cut.

Its options are values given when it is built (a changed setting builds a new runtime, with
new replicas). A session of an event loop that is gone is closed with that loop's connector,
without awaiting on another loop.

``Answer`` wraps aiohttp's response so that the core never sees aiohttp: its reads raise
``GatewayError`` (through ``errors.failure``, the one mapping) and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import aiohttp

from ..errors import EngineDeadError, EngineGenerateError, GatewayError
from .breaker import Breaker
from .config import ReplicaSpec
from .errors import STALE_CONNECTION_ERRORS, Stage, failure
from .health import Watchdog
from .load import LoadOptions, ReplicaLoad
from .options import UpstreamOptions
from .tokenizer import Tokenizer

EVENT_STREAM = "text/event-stream"


class Answer:
    """The engine's answer to one request: status and headers, then the body once."""

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return self._response.raw_headers

    @property
    def is_event_stream(self) -> bool:
        return self._response.headers.get("Content-Type", "").startswith(EVENT_STREAM)

    @property
    def content_length(self) -> int | None:
        return self._response.content_length

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (or its first ``limit`` bytes)."""
        try:
            if limit is None:
                return await self._response.read()
            return await self._response.content.read(limit)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise failure(exc, Stage.ANSWER) from exc

    async def chunks(self, stage: Stage = Stage.STREAM) -> AsyncIterator[bytes]:
        """The body as it arrives; a failure is a ``GatewayError`` for that stage."""
        iterator = self._response.content.iter_any().__aiter__()
        while True:
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except (TimeoutError, aiohttp.ClientError) as exc:
                if rest := self._buffered():
                    yield rest
                raise failure(exc, stage) from exc
            yield chunk

    def _buffered(self) -> bytes:
        """What arrived before the connection broke: aiohttp raises a broken connection's
        error before handing out the bytes it had already buffered (a slower reader lost
        the engine's last complete events)."""
        content = self._response.content
        try:
            return content._read_nowait(-1) if content._buffer else b""
        except Exception:  # its internals changed: nothing more to give
            return b""

    def release(self) -> None:
        """The body was read to its end: the connection goes back to the pool."""
        self._response.release()

    def close(self) -> None:
        """Drop the connection: the engine sees the request end (and stops generating)."""
        self._response.close()


class Upstream:
    """One replica of an engine (an OpenAI-compatible base URL, including ``/v1``)."""

    def __init__(
        self,
        url: str,
        api_key: str = "",
        name: str | None = None,
        *,
        models: tuple[str, ...] | None = None,
        weight: float = 1.0,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        options: UpstreamOptions | None = None,
        load: LoadOptions | None = None,
        provider: str = "",
    ) -> None:
        self.options = options = options or UpstreamOptions()
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.name = name or _without_userinfo(self.url)
        self.configured_models = frozenset(models) if models is not None else None
        # What it serves: as configured, else as its /models said (the watchdog asks).
        self.models: set[str] = set(models or ())
        self.weight = weight
        self.provider = provider  # as configured; else ``engine_kind`` once found
        self.engine_kind = ""  # as its /models listing says (vllm, sglang, llama.cpp)
        # This replica's own timeouts, else the shared ones.
        self.connect_timeout = connect_timeout or options.connect_timeout
        self.read_timeout = read_timeout or options.read_timeout
        self.in_flight = 0  # requests of this process on this replica right now
        self.finished = 0  # requests that ended here (the watchdog's sign of traffic)
        self.tokenizer = Tokenizer(self)  # its own, if it has one (found by the watchdog)
        self.health = Watchdog(self, options.watchdog, options.on_dead)
        self.breaker = Breaker(self.name, options.breaker)
        self.load = ReplicaLoad(
            self,
            load
            or LoadOptions(
                read=options.read_engine_metrics, interval=options.engine_metrics_interval
            ),
        )
        # Called when a request on it ended (the scheduler dispatches what now fits).
        self.on_room: Callable[[], None] | None = None
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    @classmethod
    def from_spec(cls, spec: ReplicaSpec, options: UpstreamOptions | None = None) -> Upstream:
        """A replica as ``LLM_GATEWAY_UPSTREAMS`` describes it."""
        return cls(
            spec.url,
            spec.api_key,
            spec.name or None,
            models=spec.models,
            weight=spec.weight,
            connect_timeout=spec.connect_timeout,
            read_timeout=spec.read_timeout,
            options=options,
            provider=spec.provider,
            load=LoadOptions(
                max_in_flight=spec.max_in_flight,
                metrics_url=spec.metrics_url,
                queue_threshold=spec.queue_threshold,
                kv_threshold=spec.kv_threshold,
                interval=options.engine_metrics_interval if options else 1.0,
                read=options.read_engine_metrics if options else False,
            ),
        )

    def __repr__(self) -> str:
        return f"Upstream({self.name!r})"

    @property
    def provider_name(self) -> str:
        """Its engine for traces (``gen_ai.provider.name``): as configured, else as found,
        else ``_OTHER`` (the conventions' word for a provider they do not list)."""
        return self.provider or self.engine_kind or "_OTHER"

    def serves(self, model: str | None) -> bool:
        """Whether a request for ``model`` may go here (a replica not yet discovered may)."""
        if model is None:
            return True
        if self.configured_models is not None:
            return model in self.configured_models
        return not self.models or model in self.models

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def auth_headers(self) -> list[tuple[str, str]]:
        """The gateway's own credentials for this engine (the client's are never sent)."""
        return [("Authorization", f"Bearer {self.api_key}")] if self.api_key else []

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is not None and not session.closed:
            return session
        self._forget_dead_loops()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
        )
        session = self._sessions[loop] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.options.pool_size, keepalive_timeout=30, enable_cleanup_closed=False
            ),
            timeout=timeout,
            auto_decompress=False,  # bytes pass through as the engine sent them
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
            raise_for_status=False,
        )
        return session

    def _forget_dead_loops(self) -> None:
        for loop in [loop for loop in self._sessions if loop.is_closed()]:
            # Its transports died with the loop: nothing to await, only mark both closed
            # (aiohttp's close() would schedule on that loop).
            session = self._sessions.pop(loop)
            connector = session.connector
            session.detach()
            if connector is not None:
                connector._close()

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: aiohttp.ClientTimeout | None = None,
        probe: bool = False,
    ) -> Answer:
        """Send one request and wait for the status line; failures are ``GatewayError``.
        A relayed request that cannot connect wakes the watchdog (``probe``: it is the
        watchdog's own, which must not wake itself)."""
        try:
            return Answer(await self._request(method, url, headers, body, timeout))
        except GatewayError:
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = failure(exc, Stage.REQUEST)
            if error.status == 503 and not probe:
                self.health.poke()  # cannot connect: probe now
            raise error from exc

    async def _request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: aiohttp.ClientTimeout | None,
    ) -> aiohttp.ClientResponse:
        session = self.session()
        options: dict[str, object] = {"headers": headers, "data": body, "allow_redirects": False}
        if timeout is not None:
            options["timeout"] = timeout
        sent = time.monotonic()
        try:
            return await session.request(method, url, **options)  # type: ignore[arg-type]
        except aiohttp.ClientConnectorError:
            raise
        except STALE_CONNECTION_ERRORS:
            pass  # a pooled connection the engine had closed: once more on a fresh one
        except aiohttp.SocketTimeoutError:
            # Sooner than the read timeout: not the engine, a pooled connection that aiohttp
            # poisoned while it sat idle (3.14 re-arms the read timer when reading resumes
            # after an answer read under backpressure has ended; the timer then fires on the
            # idle connection and its next request fails at once). Once more, on a fresh one.
            read_timeout = (timeout.sock_read if timeout else None) or self.read_timeout
            if time.monotonic() - sent >= read_timeout / 2:
                raise
        try:
            return await session.request(method, url, **options)  # type: ignore[arg-type]
        except STALE_CONNECTION_ERRORS as exc:
            raise EngineGenerateError("The engine closed the connection before answering.") from exc

    async def websocket(
        self, path: str, query: bytes, protocols: tuple[str, ...], max_frame: int
    ) -> aiohttp.ClientWebSocketResponse:
        """This replica's WebSocket at ``path`` (realtime); a failure to connect is a
        ``GatewayError``. The connection answers pings, and waits for frames without limit."""
        url = "ws" + self.url.removeprefix("http") + path
        if query:
            url += "?" + query.decode("latin-1")
        try:
            return await self.session().ws_connect(
                url,
                headers=dict(self.auth_headers()),
                protocols=protocols,
                max_msg_size=max_frame,
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise EngineDeadError(
                f"The engine's realtime endpoint cannot be reached: {exc}"
            ) from exc

    async def aclose(self) -> None:
        """Stop the health probe and the load reader, and close this loop's session."""
        await self.health.aclose()
        await self.load.aclose()
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()
        self._forget_dead_loops()


def _without_userinfo(url: str) -> str:
    """A URL fit for logs, metrics and /health (no user or password in it)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
