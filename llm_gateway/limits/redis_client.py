"""A pipelined Redis connection for the limits' two scripts: one socket per event loop,
commands written as they come, replies matched in order, parsed by hiredis.

Why not redis-py's asyncio client: measured here at 100-150 us of CPU per ``EVALSHA``
(its pool, locks and per-command bookkeeping) against 14-40 us for this one, and the limits
cost two calls a request (bench/limits_cost.py). redis-py stays for everything else (the
cache); this speaks only what the limits need: ``EVALSHA`` with a ``SCRIPT LOAD`` when Redis
answers ``NOSCRIPT``, ``AUTH`` and ``SELECT`` from the URL, TLS for ``rediss://``
(``redis_sentinel`` finds the server through Sentinel).

Commands written in the same loop iteration leave in one write. A command waits at most
``timeout`` seconds:
one timer per connection fails every pending command once the oldest is that late, and drops
the socket, so a hung Redis never holds a request. After a failure the next command
reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis


class RedisUnavailable(Exception):
    """Redis could not be reached, timed out, or answered with an error."""


class Redirected(RedisUnavailable):
    """A cluster node answered ``MOVED`` or ``ASK``: the slot is served at ``address``. The
    command did not run, so it may be sent again there (``redis_cluster`` does)."""

    def __init__(self, reply: str) -> None:
        super().__init__(f"Redis answered: {reply}")
        kind, slot, address = reply.split()[:3]
        self.ask, self.slot = kind == "ASK", int(slot)
        host, _, port = address.rpartition(":")
        self.address = (host or "127.0.0.1", int(port))


def failure(reply: hiredis.ReplyError) -> RedisUnavailable:
    """The exception an error reply raises."""
    text = str(reply)
    return (
        Redirected(text)
        if text.startswith(("MOVED ", "ASK "))
        else RedisUnavailable(f"Redis answered: {text}")
    )


def bulk(arg: bytes | str | int | float) -> bytes:
    data = arg if isinstance(arg, bytes) else str(arg).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pack(*args: bytes | str | int | float) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join([bulk(arg) for arg in args])


class Script:
    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()

    def command(self, keys: list[str], args: list[Any]) -> bytes:
        return pack(b"EVALSHA", self.sha, len(keys), *keys, *args)

    def head(self, keys: list[str], args: list[Any], extra: int) -> bytes:
        """An ``EVALSHA`` of this script packed but for its last ``extra`` arguments."""
        count = 3 + len(keys) + len(args) + extra
        fields = [b"EVALSHA", self.sha, len(keys), *keys, *args]
        return b"*%d\r\n" % count + b"".join([bulk(field) for field in fields])


class _Protocol(asyncio.Protocol):
    def __init__(self, on_lost: Any) -> None:
        self.reader = hiredis.Reader()
        self.pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self._on_lost = on_lost
        self._unsent: list[bytes] = []

    def write(self, command: bytes) -> None:
        """Commands of one loop iteration go out in one write (one system call)."""
        if not self._unsent:
            asyncio.get_running_loop().call_soon(self._flush)
        self._unsent.append(command)

    def _flush(self) -> None:
        unsent, self._unsent = self._unsent, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(unsent))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.pending
        while (reply := self.reader.gets()) is not False:
            future = pending.popleft()[0]
            if not future.done():
                future.set_result(reply)
            # A master demoted to replica (a failover) answers READONLY: the next command
            # reconnects, and through Sentinel finds the new master.
            readonly = isinstance(reply, hiredis.ReplyError) and str(reply).startswith("READONLY")
            if readonly and self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisUnavailable(f"connection to Redis lost: {exc or 'closed'}"))
        self._on_lost(self)

    def fail(self, error: Exception) -> None:
        while self.pending:
            future = self.pending.popleft()[0]
            if not future.done():
                future.set_exception(error)


class RedisConnection:
    def __init__(self, url: str, timeout: float = 1.0, scripts: tuple[Script, ...] = ()) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"not a redis:// URL: {parts.scheme}://…")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.tls = parts.scheme == "rediss"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.db = int(parts.path.strip("/") or 0)
        self.timeout = timeout
        self.scripts = scripts  # loaded on connecting: ``send_nowait`` may then use them
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def call(self, *args: bytes | str | int | float) -> Any:
        protocol = self._protocol or await self._connect()
        reply = await self._send(protocol, pack(*args))
        if isinstance(reply, hiredis.ReplyError):
            raise failure(reply)
        return reply

    async def evalsha(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        return await self._evalsha(script, script.command(keys, args))

    def send_nowait(self, command: bytes) -> asyncio.Future[Any] | None:
        """The reply's future, without a coroutine; None when not connected. A reply that is
        an error arrives as a ``hiredis.ReplyError`` value."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            return None
        return self._send(protocol, command)

    async def evalsha_packed(self, script: Script, head: bytes, *last: str) -> Any:
        """``head`` from ``script.head()``, completed by the ``last`` arguments."""
        return await self._evalsha(script, head + b"".join([bulk(arg) for arg in last]))

    async def _evalsha(self, script: Script, command: bytes) -> Any:
        protocol = self._protocol or await self._connect()
        reply = await self._send(protocol, command)
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            await self.call(b"SCRIPT", b"LOAD", script.source)
            reply = await self._send(protocol, command)
        if isinstance(reply, hiredis.ReplyError):
            raise failure(reply)
        return reply

    def _send(self, protocol: _Protocol, command: bytes) -> asyncio.Future[Any]:
        if protocol.transport is None or protocol.transport.is_closing():
            raise RedisUnavailable("connection to Redis closed")
        future = asyncio.get_running_loop().create_future()
        protocol.pending.append((future, time.monotonic()))
        protocol.write(command)
        return future

    async def _connect(self) -> _Protocol:
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            protocol = await self._open(loop)
        except BaseException as exc:
            error = exc if isinstance(exc, RedisUnavailable) else RedisUnavailable(str(exc))
            self._connecting.set_exception(error)
            self._connecting.exception()  # retrieved: no "never retrieved" warning
            self._connecting = None
            if isinstance(exc, asyncio.CancelledError):
                raise  # the caller was cancelled: it must see so (it would go on otherwise)
            raise error from exc
        self._connecting.set_result(protocol)
        self._connecting = None
        self._protocol = protocol
        self._watch(loop)
        return protocol

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        context = ssl.create_default_context() if self.tls else None
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Protocol(self._lost), self.host, self.port, ssl=context
                ),
                self.timeout,
            )
        except (TimeoutError, OSError) as exc:
            raise RedisUnavailable(f"cannot connect to Redis at {self.host}:{self.port}") from exc
        hello: list[bytes] = []
        if self.password is not None:
            auth = (self.username, self.password) if self.username else (self.password,)
            hello.append(pack(b"AUTH", *auth))
        if self.db:
            hello.append(pack(b"SELECT", self.db))
        hello += [pack(b"SCRIPT", b"LOAD", script.source) for script in self.scripts]
        try:
            for command in hello:
                reply = await asyncio.wait_for(self._send(protocol, command), self.timeout)
                if isinstance(reply, hiredis.ReplyError):
                    raise RedisUnavailable(f"Redis refused the connection: {reply}")
        except BaseException:  # refused, timed out or cancelled: the socket is not kept
            if protocol.transport is not None:
                protocol.transport.close()
            raise
        return protocol

    def _lost(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every quarter of the timeout: fail everything if the oldest command is late."""
        protocol = self._protocol
        if protocol is None:
            self._timer = None
            return
        if protocol.pending and time.monotonic() - protocol.pending[0][1] > self.timeout:
            protocol.fail(RedisUnavailable(f"Redis did not answer within {self.timeout} s"))
            if protocol.transport is not None:
                protocol.transport.abort()
            self._protocol = None
            self._timer = None
            return
        self._timer = loop.call_later(self.timeout / 4, self._watch, loop)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
