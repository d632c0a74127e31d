"""Finding SSE event boundaries in relayed bytes, without decoding them.

The relay forwards only complete events (everything up to the last blank line), so that an
error event it adds after a broken upstream is never glued onto half an event. Engines send
whole events per chunk, so in practice nothing is held back: the common case is one
``endswith`` test.
"""

from __future__ import annotations

import re

# Two line ends in a row make a blank line. A lone CR is a line end (WHATWG), a CRLF is one.
_BLANK_LINE = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")


class EventBoundary:
    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """The bytes that can go out now: up to and including the last complete event."""
        data = self._pending + chunk if self._pending else chunk
        if data.endswith(b"\n\n"):
            self._pending = b""
            return data
        end = -1
        for match in _BLANK_LINE.finditer(data):
            end = match.end()
        if end < 0:
            self._pending = data
            return b""
        self._pending = data[end:]
        return data[:end]

    def flush(self) -> bytes:
        """What is left at a normal end of stream (sent as is: the bytes stay identical)."""
        pending, self._pending = self._pending, b""
        return pending
