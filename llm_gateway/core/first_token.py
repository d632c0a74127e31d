"""When a stream's first token went out: the record's time to first token.

Only the first few events of a stream are read (until one carries text), so the cost does
not grow with the stream. Engines often open with an event that has only the role.
"""

from __future__ import annotations

from ..sse.chunks import chunk_text, decode_chunks
from ..sse.decoder import SSEDecoder

_MAX_EVENTS = 64  # give up on streams whose events carry no text (tool calls, ...)


class FirstToken:
    __slots__ = ("_decoder", "_events")

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._events = 0

    def scan(self, data: bytes) -> bool | None:
        """Whether these bytes (whole events, just sent) carry the stream's first text:
        True, False (look at the next ones), or None (gave up: stop asking)."""
        payloads = self._decoder.data_payloads(data)
        self._events += len(payloads)
        if any(chunk_text(c) for c in decode_chunks([p for p in payloads if p != b"[DONE]"])):
            return True
        return None if self._events >= _MAX_EVENTS else False
