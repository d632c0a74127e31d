"""Which headers cross the gateway, each way: the one header policy."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Never forwarded upstream: the client's key, and what the gateway sets itself.
REQUEST_DROP = HOP_BY_HOP | {
    b"x-gateway-request-id",
    b"x-gateway-priority",  # the scheduler's: the engine orders nothing by it
    b"host",
    b"authorization",
    b"content-length",
    b"x-request-id",
    b"accept-encoding",
    b"expect",
    b"cookie",
}
RESPONSE_DROP = HOP_BY_HOP | {b"content-length", b"date", b"server", b"x-request-id"}
STREAM_HEADERS = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


def to_upstream(
    headers: Iterable[tuple[bytes, bytes]],
    request_id: str,
    request_id_header: str,
    credentials: list[tuple[str, str]],
    own: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The client's headers less the dropped ones, then the request id, identity encoding
    (bytes come back as the engine sent them), the gateway's own credentials, and its
    ``own`` headers (a trace context), which replace the client's of the same names: the
    engine's span is then a child of the gateway's, not a sibling of it."""
    drop = REQUEST_DROP
    if own:
        drop = drop | {name.lower().encode("latin-1") for name, _ in own}
    out = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name not in drop
    ]
    if request_id_header:
        out.append((request_id_header, request_id))
    out.append(("Accept-Encoding", "identity"))
    out.extend(credentials)
    out.extend(own)
    return out


def from_upstream(raw: Iterable[tuple[bytes, bytes]], stream: bool) -> list[tuple[bytes, bytes]]:
    """The engine's headers the client gets; a stream's caching headers are the gateway's."""
    if not stream:
        return [h for h in raw if h[0].lower() not in RESPONSE_DROP]
    out = [h for h in raw if (n := h[0].lower()) not in RESPONSE_DROP and n != b"cache-control"]
    out.extend(STREAM_HEADERS)
    return out
