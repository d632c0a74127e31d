"""A replica's own tokenizer, for the usage the gateway reports when the engine reports none.

Found once per replica (by its watchdog, while the replica is idle), never on a stream's
path: ``POST /tokenize`` at the replica's origin with ``prompt`` (vLLM) or ``content``
(llama.cpp's ``llama-server``), else llama-cpp-python's ``POST /extras/tokenize`` with
``input``. Each answers the tokens (vLLM also their ``count``); a kind is taken when it
counts the probe's text as at least one token.

llama-cpp-python serves one request at a time behind one lock (and, unless started with
``--interrupt_requests False``, a new request cuts the running generation short): its
tokenizer is asked only when no other request of this process is on the replica, else the
count is left to the caller's estimate. Any failure, or an answer later than ``timeout``,
is no count: a tokenizer never fails a request.
"""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp
import orjson

from ..errors import GatewayError

PROBE_TEXT = "Hello"
# (engine, path on the origin, the field that carries the text)
KINDS: tuple[tuple[str, str, str], ...] = (
    ("vllm", "/tokenize", "prompt"),
    ("llama.cpp", "/tokenize", "content"),
    ("llama-cpp-python", "/extras/tokenize", "input"),  # serialized: see above
)
SERIALIZED = "llama-cpp-python"


class Replica(Protocol):
    """What the tokenizer needs of its replica (``client.Upstream``)."""

    in_flight: int

    @property
    def origin(self) -> str: ...

    def auth_headers(self) -> list[tuple[str, str]]: ...

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: aiohttp.ClientTimeout | None = ...,
        probe: bool = ...,
    ) -> Any: ...


class Tokenizer:
    __slots__ = ("replica", "kind", "path", "field", "searched", "timeout")

    def __init__(self, replica: Replica, timeout: float = 2.0) -> None:
        self.replica = replica
        self.kind: str | None = None  # the engine whose tokenizer it is; None: none (yet)
        self.path = self.field = ""
        self.searched = False
        self.timeout = timeout

    async def discover(self, model: str | None, headers: list[tuple[str, str]]) -> None:
        """Find the replica's tokenizer, once (the watchdog calls this while it is idle)."""
        if self.searched:
            return
        for kind, path, field in KINDS:
            if await self._ask(path, field, model, PROBE_TEXT, headers):
                self.kind, self.path, self.field = kind, path, field
                break
        self.searched = True

    async def count(self, text: str, model: str | None) -> int | None:
        """The tokens of ``text`` by the replica's own tokenizer, or None (no tokenizer, a
        serialized one that is busy, a failure)."""
        kind = self.kind
        if kind is None or not text:
            return None
        if kind == SERIALIZED and self.replica.in_flight > 1:  # others on it, not just us
            return None
        return await self._ask(self.path, self.field, model, text, [])

    async def _ask(
        self, path: str, field: str, model: str | None, text: str, headers: list[tuple[str, str]]
    ) -> int | None:
        body: dict[str, Any] = {field: text}
        if model:
            body["model"] = model
        try:
            answer = await self.replica.send(
                "POST",
                self.replica.origin + path,
                headers=[
                    *self.replica.auth_headers(),
                    *headers,
                    ("Content-Type", "application/json"),
                ],
                body=orjson.dumps(body),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                probe=True,
            )
            try:
                raw = await answer.read() if answer.status == 200 else b""
            finally:
                answer.release()
            found = orjson.loads(raw) if raw else None
        except (GatewayError, orjson.JSONDecodeError):
            return None
        if not isinstance(found, dict):
            return None
        count = found.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return count
        tokens = found.get("tokens")
        return len(tokens) if isinstance(tokens, list) else None
