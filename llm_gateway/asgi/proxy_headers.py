"""The client's real address behind a reverse proxy: ``X-Forwarded-For`` and
``X-Forwarded-Proto``, believed only from the addresses in ``LLM_GATEWAY_TRUSTED_PROXIES``.

From a trusted peer, ``scope["client"]`` becomes the last address in ``X-Forwarded-For``
that is not itself a trusted proxy (so a chain of proxies works and a client cannot put
another address before its own), and ``scope["scheme"]`` the forwarded one. From anyone
else both headers are ignored: a spoofed ``X-Forwarded-For`` changes nothing. The access
log, the request log and Django's ``REMOTE_ADDR`` all read the scope after this.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..conf import conf
from ..ingress.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(header: bytes, networks: list[Network]) -> str | None:
    """The client in an ``X-Forwarded-For`` value: the rightmost address not trusted."""
    hops = [hop.strip() for hop in header.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop.strip("[]")))
            except ValueError:
                return None  # not an address: believe nothing
    return hops[0] if hops else None


class ProxyHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        networks = conf.TRUSTED_PROXIES
        client = scope.get("client")
        if (
            networks
            and client
            and scope["type"] in ("http", "websocket")
            and trusted(str(client[0]), networks)
        ):
            scope = self._from_headers(scope, networks)
        await self.app(scope, receive, send)

    @staticmethod
    def _from_headers(scope: Scope, networks: list[Network]) -> Scope:
        forwarded_for = forwarded_proto = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                # Several headers are one list, in order (RFC 9110, 5.3).
                forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
            elif name == b"x-forwarded-proto":
                forwarded_proto = value
        changed: dict[str, Any] = {}
        if forwarded_for is not None and (client := forwarded_client(forwarded_for, networks)):
            changed["client"] = (client, 0)
        if forwarded_proto is not None:
            proto = forwarded_proto.decode("latin-1").strip().lower()
            if proto in ("http", "https"):
                secure = proto == "https"
                changed["scheme"] = (
                    ("wss" if secure else "ws") if scope["type"] == "websocket" else proto
                )
        return {**scope, **changed} if changed else scope
