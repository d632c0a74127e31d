"""A reference model of the WHATWG event-stream rules (HTML, 9.2.6), written apart from
llm_gateway/sse and as plainly as the spec reads: decode the whole stream as UTF-8 (with
replacement), drop one leading BOM, cut lines at CRLF, LF or CR, and interpret each line.
Also the hypothesis strategies of the fuzz tests (tests/test_sse_fuzz.py, bench/fuzz_sse.py).
"""

from __future__ import annotations

from hypothesis import strategies as st


def reference_events(stream: bytes) -> list[tuple[str, str, str, int | None]]:
    """(event type, data, last event id, retry) of every event the stream dispatches."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\r":
            lines.append(text[start:i])
            i += 2 if text[i + 1 : i + 2] == "\n" else 1
            start = i
        elif text[i] == "\n":
            lines.append(text[start:i])
            i += 1
            start = i
        else:
            i += 1
    # What follows the last line end is an incomplete line: never interpreted.
    events = []
    event_type, data, last_id, retry = "", "", "", None
    for line in lines:
        if line == "":
            if data:
                events.append((event_type or "message", data[:-1], last_id, retry))
            event_type, data, retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            name, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id":
            if "\x00" not in value:
                last_id = value
        elif name == "retry" and value and all("0" <= c <= "9" for c in value):
            retry = int(value)
    return events


TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30
) | st.sampled_from(["", "[DONE]", '{"a": 1}', "x\u2028y", "\x00", "é", "🙂", " lead"])
LINE = st.one_of(
    st.builds(lambda t: "data: " + t, TEXT),
    st.builds(lambda t: "data:" + t, TEXT),
    st.just("data"),
    st.builds(lambda t: "event: " + t, TEXT),
    st.builds(lambda t: "id: " + t, TEXT),
    st.builds(lambda d: f"retry: {d}", st.integers(0, 10**6)),
    st.sampled_from(["retry: 12a", "retry:", ": comment", ":", "unknown: x", "datax: y", ""]),
)
END = st.sampled_from(["\n", "\r", "\r\n"])
JUNK = st.sampled_from([b"\xff", b"\xe2\x82", b"\xc3", b"\xed\xa0\x80", b"\xf0\x9f\x99"])


@st.composite
def event_streams(draw: st.DrawFn) -> bytes:
    """Random streams: lines of every kind, mixed line ends, maybe a BOM, maybe invalid
    UTF-8 bytes anywhere (never inside a line end)."""
    parts: list[bytes] = [b"\xef\xbb\xbf"] if draw(st.booleans()) else []
    for line in draw(st.lists(LINE, max_size=25)):
        encoded = line.encode()
        if draw(st.integers(0, 9)) == 0:
            cut = draw(st.integers(0, len(encoded)))
            encoded = encoded[:cut] + draw(JUNK) + encoded[cut:]
        parts.append(encoded + draw(END).encode())
    return b"".join(parts)


def chunkings(stream: bytes) -> st.SearchStrategy[list[bytes]]:
    """Every way to cut ``stream`` into chunks (down to one byte each)."""
    cuts = st.lists(st.integers(0, len(stream)), max_size=12).map(sorted)
    return cuts.map(
        lambda points: [
            stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)
        ]
    )
