"""One realtime session: refused or accepted at the upgrade, then frames both ways.

The key (``Authorization``, or the ``openai-insecure-api-key.<key>`` subprotocol of
browsers), the limits (a session is one request in flight) and the replica's own WebSocket
are all settled before the client's upgrade is accepted: any failure closes the handshake
(daphne answers 403), never an open-then-close. Only ``realtime`` is echoed as the
subprotocol. Text and binary frames pass unchanged and in order; each side's close code and
reason reach the other; pings are answered by both servers. A frame over
``WS_MAX_FRAME_BYTES`` closes the session with 1009, an idle one ends after
``WS_IDLE_SECONDS``, an engine that dies closes the client with 1011. The session's usage
(``realtime.usage``) goes to its record, which the observers get like any request's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from urllib.parse import parse_qs

import aiohttp

from ..asgi.auth import principal_of
from ..conf import conf
from ..core.endpoints import REALTIME
from ..core.lifecycle import Lifecycle
from ..core.record import RequestRecord
from ..core.request import GatewayRequest
from ..errors import GatewayError
from ..ingress.request_id import SCOPE_KEY as REQUEST_ID_KEY
from ..ingress.request_id import choose
from ..ingress.types import Receive, Scope, Send
from ..runtime import Runtime, get_runtime
from .usage import event_usage

logger = logging.getLogger(__name__)

SUBPROTOCOL = "realtime"
SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})


class RealtimeRelay:
    """An ASGI application for WebSocket scopes: ``path("v1/realtime", RealtimeRelay())``.
    ``runtime``: this process's unless one is given (tests)."""

    def __init__(self, runtime: Runtime | None = None) -> None:
        self._runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise ValueError("RealtimeRelay serves WebSocket scopes only")
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        runtime = self._runtime or get_runtime()
        runtime.start()
        await Session(scope, receive, send, runtime).run()


class Session:
    """One session: admitted, leased and observed through the core's lifecycle, as any
    relayed request is; its frames relayed here."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, runtime: Runtime) -> None:
        self.scope, self.receive, self.send = scope, receive, send
        self.runtime = runtime
        self.upstream_ws: aiohttp.ClientWebSocketResponse | None = None
        self.lifecycle: Lifecycle | None = None
        self.last_frame = time.monotonic()
        self.closing: tuple[int, str] | None = None  # asked by the gateway (drain, idle)
        self._wake = asyncio.Event()

    @property
    def record(self) -> RequestRecord | None:
        return self.lifecycle.record if self.lifecycle is not None else None

    async def run(self) -> None:
        try:
            await self._open()
        except GatewayError as exc:
            if self.lifecycle is not None:
                self.lifecycle.record.status = exc.status
                self._end(f"error:{exc.code}")
            await self.send({"type": "websocket.close", "code": exc.close_code()})
            self._finish()
            return
        self.runtime.sessions.add(self)
        try:
            await self._relay()
        finally:
            self.runtime.sessions.discard(self)
            await self._close_upstream()
            self._finish()

    async def _open(self) -> None:
        """Everything that can refuse the session, before the client's upgrade is accepted."""
        scope = self.scope
        offered = list(scope.get("subprotocols") or ())
        # Mounted without the gateway's middleware: checked here, fail closed anyway.
        principal = await principal_of(scope, self.runtime)
        query = scope.get("query_string", b"")
        model = (parse_qs(query.decode("latin-1")).get("model") or [None])[0]
        incoming = next((v for n, v in scope["headers"] if n == b"x-request-id"), None)
        request_id = scope.get(REQUEST_ID_KEY) or choose(incoming)
        client = scope.get("client")
        request = GatewayRequest(
            "GET",
            REALTIME,
            query,
            scope["headers"],
            b"",
            request_id,
            principal,
            f"{client[0]}" if client else None,
            payload={"model": model} if model else None,
        )
        self.lifecycle = lifecycle = self.runtime.relay.session(request)
        record = lifecycle.record
        record.model, record.stream = model, True
        await lifecycle.admit()
        upstream = lifecycle.dispatch.acquire(model)
        record.upstream = upstream.name
        protocols = (SUBPROTOCOL,) if SUBPROTOCOL in offered else ()
        self.upstream_ws = await upstream.websocket(
            REALTIME, query, protocols, conf.WS_MAX_FRAME_BYTES
        )
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if protocols:
            accept["subprotocol"] = SUBPROTOCOL  # never the key-bearing one
        await self.send(accept)
        record.status, record.ttfb = 101, record.since_start()

    async def _relay(self) -> None:
        assert self.upstream_ws is not None and self.record is not None
        tasks = [
            asyncio.ensure_future(self._from_client()),
            asyncio.ensure_future(self._from_upstream()),
            asyncio.ensure_future(self._watch()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failure in a pump is a bug: logged by the caller
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _from_client(self) -> None:
        ws, record = self.upstream_ws, self.record
        assert ws is not None and record is not None
        limit = conf.WS_MAX_FRAME_BYTES
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                code = message.get("code") or 1000
                self._end("client_disconnected" if code not in (1000, 1001) else "done")
                reason = str(message.get("reason") or "")[:120].encode()
                await ws.close(code=_valid_close(code), message=reason)
                return
            if kind != "websocket.receive":
                continue
            self.last_frame = time.monotonic()
            text, data = message.get("text"), message.get("bytes")
            size = len(text.encode()) if text is not None else len(data or b"")
            record.bytes_in += size
            if size > limit:
                await self._close_both(1009, f"frame larger than {limit} bytes")
                self._end("error:frame_too_large")
                return
            if text is not None:
                await ws.send_str(text)
            elif data is not None:
                await ws.send_bytes(data)

    async def _from_upstream(self) -> None:
        ws, record = self.upstream_ws, self.record
        assert ws is not None and record is not None
        closing: aiohttp.WSMessage | None = None
        while True:
            frame = await ws.receive()
            self.last_frame = time.monotonic()
            if frame.type == aiohttp.WSMsgType.TEXT:
                await self.send({"type": "websocket.send", "text": frame.data})
                record.bytes_out += len(frame.data)
                if (usage := event_usage(frame.data)) is not None:
                    record.prompt_tokens = (record.prompt_tokens or 0) + usage[0]
                    record.completion_tokens = (record.completion_tokens or 0) + usage[1]
                    record.usage_source = "engine"
            elif frame.type == aiohttp.WSMsgType.BINARY:
                await self.send({"type": "websocket.send", "bytes": frame.data})
                record.bytes_out += len(frame.data)
            elif frame.type == aiohttp.WSMsgType.ERROR:
                error = frame.data
                if isinstance(error, aiohttp.WebSocketError) and error.code == 1009:
                    await self._close_client(1009, "engine frame too large")
                    self._end("error:frame_too_large")
                    return
                break
            else:  # CLOSE, CLOSING, CLOSED
                closing = frame
                break
        code = ws.close_code
        if code is None or code == 1006 or ws.exception() is not None:
            await self._close_client(1011, "the engine's connection was lost")
            self._end("error:upstream_error")
            return
        await self._close_client(code, _reason(closing))
        self._end("done" if code in (1000, 1001) else f"upstream_closed:{code}")

    async def _watch(self) -> None:
        """Ends an idle session, and one the gateway asked to close (the drain)."""
        idle = conf.WS_IDLE_SECONDS
        while True:
            timeout = max(self.last_frame + idle - time.monotonic(), 0.0) if idle else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            if self.closing is not None:
                code, reason = self.closing
                await self._close_both(code, reason)
                assert self.record is not None
                self._end("server_shutting_down" if code == 1001 else "closed")
                return
            if idle and time.monotonic() - self.last_frame >= idle:
                await self._close_both(1000, f"idle for {idle:g} s")
                assert self.record is not None
                self._end("idle")
                return

    def _end(self, ending: str) -> None:
        """How the session ended: the first side to say counts (it frees the replica)."""
        if self.lifecycle is not None:
            self.lifecycle.end(ending)

    def close_soon(self, code: int, reason: str) -> None:
        self.closing = (code, reason)
        self._wake.set()

    async def _close_both(self, code: int, reason: str) -> None:
        await self._close_client(code, reason)
        await self._close_upstream(code)

    async def _close_client(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.send({"type": "websocket.close", "code": code, "reason": reason[:120]})

    async def _close_upstream(self, code: int = 1000) -> None:
        ws = self.upstream_ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=_valid_close(code)), 2.0)

    def _finish(self) -> None:
        if self.lifecycle is not None:
            self.lifecycle.close()  # ends it "done" if nothing said otherwise
            self.lifecycle = None


def _valid_close(code: int) -> int:
    """A code a close frame may carry (1005, 1006 and 1015 are never sent)."""
    return code if code in SENDABLE_CLOSE_CODES or 3000 <= code < 5000 else 1000


def _reason(frame: aiohttp.WSMessage | None) -> str:
    """The close reason the engine sent (aiohttp hands it as the close message's ``extra``)."""
    extra = frame.extra if frame is not None and frame.type == aiohttp.WSMsgType.CLOSE else ""
    return str(extra or "")[:120]
