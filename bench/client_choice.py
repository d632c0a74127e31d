"""The upstream HTTP client, chosen by measurement: one minimal relay, two clients.

    BENCH_CLIENT=aiohttp|httpx python -m llm_gateway.run -v 0 -b 127.0.0.1 -p PORT \\
        bench.client_choice:application

A raw ASGI app that relays POST bodies to $FAKE_UPSTREAM_URL/chat/completions with one shared,
pooled client (no auth, no Django), so that the client is all that differs between two runs
of bench/cpu_probe.sh. Not part of the gateway; the numbers are in docs/performance.md.
"""

from __future__ import annotations

import os
from typing import Any

UPSTREAM = os.environ.get("FAKE_UPSTREAM_URL", "http://127.0.0.1:9100/v1") + "/chat/completions"
CLIENT = os.environ.get("BENCH_CLIENT", "aiohttp")
_client: Any = None


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def application(scope: Any, receive: Any, send: Any) -> None:
    global _client
    if scope["type"] != "http":
        return
    body = await _read_body(receive)
    headers = {"Content-Type": "application/json"}
    if CLIENT == "httpx":
        import httpx

        if _client is None:
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
            _client = httpx.AsyncClient(timeout=httpx.Timeout(600, connect=5), limits=limits)
        response = await _client.post(UPSTREAM, content=body, headers=headers)
        status, data = response.status_code, response.content
    else:
        import aiohttp

        if _client is None:
            _client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
            )
        async with _client.post(UPSTREAM, data=body, headers=headers) as response:
            status, data = response.status, await response.read()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(data)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
