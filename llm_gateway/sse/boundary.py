"""Event boundaries in relayed bytes, without decoding them, and the ``[DONE]`` that ends an
OpenAI stream: the one definition of both.

The relay forwards only complete events (everything up to the last blank line), so that an
error event it adds after a broken upstream is never glued onto half an event. Engines send
whole events per chunk, so in practice nothing is held back: the common case is one
``endswith`` test. A blank line is two line ends in a row, where a line end is CRLF, a lone
CR or LF (WHATWG HTML, 9.2.6): the rule ``EventBoundary`` and ``split_events`` share.
"""

from __future__ import annotations

import re

DONE = b"[DONE]"  # the data of the event that ends an OpenAI stream
DONE_EVENT = b"data: [DONE]"

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


def split_events(data: bytes) -> list[bytes]:
    """Each event with the blank line that ends it (a partial one last, as it came): joined,
    they are ``data`` again, byte for byte."""
    if b"\r" not in data:  # the common case: LF framing, where the rule is a plain split
        parts = data.split(b"\n\n")
        events = [part + b"\n\n" for part in parts[:-1]]
    else:
        events, start = [], 0
        for match in _BLANK_LINE.finditer(data):
            events.append(data[start : match.end()])
            start = match.end()
        parts = [data[start:]]
    if parts[-1]:
        events.append(parts[-1])
    return events


def ends_with_done(sent: bytes) -> bool:
    """Whether these bytes (the last sent) close the stream with ``[DONE]``: it was whole."""
    return sent.rstrip(b"\r\n").endswith(DONE_EVENT)
