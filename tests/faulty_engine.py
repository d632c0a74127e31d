"""An OpenAI-shaped engine that fails on purpose, byte by byte: for the fault tests.

    python tests/faulty_engine.py --port P

It speaks raw HTTP/1.1 over asyncio streams (no framework between it and the socket), so a
fault lands exactly where asked. Each request says its fault in ``X-Fault``:

    silent        read the request, never answer (the connection stays open)
    cut:N:rst     write the first N bytes of the answer, then reset the connection (RST)
    cut:N:fin     ... then close it (FIN)
    stall:N       write the first N bytes, then send nothing more
    (none)        the whole answer

The answer to a request whose JSON body has ``"stream": true`` is an SSE stream of
``X-Fault-Events`` (default 20) chat chunks and ``[DONE]``, chunked, one HTTP chunk per event;
anything else gets a chat completion with a Content-Length. ``GET /health`` answers 200.
``answer(stream, events)`` builds those bytes, so a test knows where every offset falls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct


def chunk_event(index: int) -> bytes:
    payload = {
        "id": "chatcmpl-faulty",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": {"content": f"w{index} "}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def stream_events(events: int) -> list[bytes]:
    return [chunk_event(i) for i in range(events)] + [b"data: [DONE]\n\n"]


def answer(stream: bool, events: int = 20) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The whole answer's bytes, and for a stream each event with the offset its last byte
    reaches (an event is whole once that many bytes arrived)."""
    if not stream:
        body = json.dumps(
            {
                "id": "chatcmpl-faulty",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "fake-model",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "whole"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        return head + body, []
    out = bytearray(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    ends: list[tuple[int, bytes]] = []
    for event in stream_events(events):
        out += b"%x\r\n" % len(event)
        out += event
        ends.append((len(out), event))
        out += b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out), ends


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], headers, body


def reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:  # linger 0: close() sends RST, not FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request_line, headers, body = await read_request(reader)
            if request_line.startswith("GET /health"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                continue
            fault = headers.get("x-fault", "").split(":")
            try:
                stream = bool(json.loads(body or b"{}").get("stream"))
            except (ValueError, AttributeError):
                stream = False
            data, _ = answer(stream, int(headers.get("x-fault-events", "20")))
            if fault[0] == "silent":
                await asyncio.sleep(3600)
            if fault[0] in ("cut", "stall"):
                writer.write(data[: int(fault[1])])
                await writer.drain()
                if fault[0] == "stall":
                    await asyncio.sleep(3600)
                await asyncio.sleep(0.01)  # the bytes leave before the reset
                if fault[2] == "rst":
                    reset(writer)
                else:
                    writer.close()
                return
            writer.write(data)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        writer.transport.abort()


async def main(host: str, port: int) -> None:
    server = await asyncio.start_server(serve, host, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    asyncio.run(main(options.host, options.port))
