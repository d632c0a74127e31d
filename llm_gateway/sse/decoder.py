"""Server-sent events: an incremental decoder (WHATWG) and an encoder. No Django imports.

The decoder follows WHATWG HTML, "9.2.6 Interpreting an event stream": bytes are split into
lines *before* UTF-8 decoding (a character split across chunks survives; vLLM decoded each
chunk on its own and dropped such chunks), CR, LF and CRLF all end a line, including a CRLF
split across two chunks (httpx-sse / openai-python carry the CR over), one leading BOM is
dropped, and U+2028 is not a line break (so no ``str.splitlines``).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class ServerSentEvent(NamedTuple):
    """One dispatched event (a NamedTuple: built per event, so it must be cheap)."""

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events completed by each chunk."""

    __slots__ = (
        "_buffer",
        "_skip_lf",
        "_bom_checked",
        "_event",
        "_data",
        "_last_id",
        "_retry",
        "_idle",
    )

    def __init__(self) -> None:
        self._buffer = b""
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it
        self._bom_checked = False
        self._event = ""
        self._data: list[str] = []
        self._last_id = ""  # persists across events, as the spec's last-event-ID buffer does
        self._retry: int | None = None
        self._idle = True  # no state carried over from earlier chunks

    def decode_chunk(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events this chunk completes, by the general rules."""
        if not chunk:
            return []
        return self._decode_general(chunk)

    def data_payloads(self, chunk: bytes) -> list[bytes]:
        """The data of each event this chunk completes, as bytes (what a reader parses): cut
        out directly when the chunk is what engines send (``_whole_data_payloads``), else the
        general rules' events encoded again. The one entry point of the fast path."""
        if not chunk:
            return []
        payloads = self._whole_data_payloads(chunk)
        if payloads is None:
            payloads = [event.data.encode() for event in self._decode_general(chunk)]
        return payloads

    def _decode_general(self, chunk: bytes) -> list[ServerSentEvent]:
        """The WHATWG rules, line by line."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        data = self._buffer + chunk if self._buffer else chunk
        if not self._bom_checked:
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._buffer = data  # could still become a BOM
                self._idle = False
                return []
            self._bom_checked = True
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        lines = _LINE_END.split(data)
        self._buffer = lines.pop()
        if data.endswith(b"\r"):
            self._skip_lf = True
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._process_line(line.decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        self._idle = self._bom_checked and not (
            self._buffer or self._skip_lf or self._data or self._event or self._retry is not None
        )
        return events

    def _whole_data_payloads(self, chunk: bytes) -> list[bytes] | None:
        """The data of each event, when the chunk is what engines send in practice: whole
        events of one ``data: `` line each, all LF-ended or all CRLF-ended (sse-starlette,
        as in llama-cpp-python's server), and no state is carried from earlier chunks. The
        general rules then give exactly these events, so they are cut out directly (the
        decoder's fast path; a tap can parse the bytes without building events). Anything
        else: None, and the chunk takes the general rules.
        """
        if not self._idle or not chunk.startswith(b"data: "):
            return None
        if chunk.endswith(b"\r\n\r\n"):
            end, crs_per_event = b"\r\n\r\n", 2
        elif chunk.endswith(b"\n\n"):
            end, crs_per_event = b"\n\n", 0
        else:
            return None
        payloads = chunk[6 : -len(end)].split(end + b"data: ")
        # k payloads account for 2k LFs (and 2k CRs with CRLF): k - 1 separators and the end.
        # Any other line end means another kind of line, or an event of several lines.
        events = len(payloads)
        if chunk.count(b"\n") != 2 * events or chunk.count(b"\r") != crs_per_event * events:
            return None
        self._bom_checked = True  # it starts with "data: ", so there is no BOM
        return payloads

    def _process_line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\x00" not in value:
                self._last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event, retry = self._data, self._event, self._retry
        self._data, self._event, self._retry = [], "", None
        if not data:
            return None
        return ServerSentEvent(event or "message", "\n".join(data), self._last_id, retry)


def encode_event(data: str | bytes, event: str | None = None) -> bytes:
    """One SSE event; multi-line data becomes several data lines."""
    text = data.decode() if isinstance(data, bytes) else data
    head = f"event: {event}\n" if event else ""
    body = "".join(f"data: {line}\n" for line in _split_for_data(text))
    return (head + body + "\n").encode()


def _split_for_data(text: str) -> list[str]:
    return _LINE_END_STR.split(text)


_LINE_END_STR = re.compile(r"\r\n|\r|\n")
