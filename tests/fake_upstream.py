"""A fake OpenAI-compatible engine for the end-to-end tests: a real HTTP server process.

    python tests/fake_upstream.py --port 9000

Knobs, as request headers (the gateway forwards unknown headers):
    X-Fake-Chunks: N          stream N content chunks (default 5)
    X-Fake-Delay-Ms: D        wait D ms between stream chunks
    X-Fake-Split: K           write the stream in pieces of K bytes, cutting events anywhere
    X-Fake-Abort-After: K     send K chunks, then drop the connection mid-stream
    X-Fake-Status: S          answer with HTTP status S
    X-Fake-Error: kind        error body: openai (default), traceback, text, html, flat
    X-Fake-Sleep-Ms: D        wait D ms before answering at all
    X-Fake-Hang: 1            stream one chunk, then never send more (read timeout)
    X-Fake-Abort-After-Done: 1  send the whole stream, [DONE] included, then drop the connection
    X-Fake-No-Usage: 1        report no usage at all (as llama-cpp-python's server in streams;
                              plain answers and the Responses API too)
    X-Fake-Models: a,b        GET /v1/models lists these (default: fake-model)
    X-Fake-Cached: K          chat usage says K of the 7 prompt tokens were cached
    X-Fake-Repeat: R          each streamed chat chunk's content is its word R times
Observation:
    GET  /_fake/probes        when GET /health was called (the gateway's watchdog)
    GET  /_fake/requests      every request seen: path, method, headers, body, and whether the
                              client disconnected before the answer was complete
    POST /_fake/reset         forget them
    POST /_fake/health        {"status": 200|503}: what GET /health answers
    POST /_fake/status        {"status": S}: every API request answers S (0: normally)
    GET  /_fake/realtime      the realtime sessions seen: headers, query, subprotocol, close
Realtime (WebSocket /v1/realtime): echoes frames; text events by type: response.create ->
response.created + response.done (OpenAI's usage), input_audio_buffer.commit ->
transcription.done (vLLM's usage), close {code, reason} -> closes so, die -> drops the
connection, big {bytes} -> one text frame that large.
Options: --models a,b (what GET /v1/models lists), --owned-by O (as what engine: vllm,
llamacpp, sglang), --models-delay-ms D (how long that
takes), --status S (as POST /_fake/status),
--tokenizer vllm|llama.cpp|llama-cpp-python: that engine's tokenize endpoint, which counts
a text's whitespace-separated words (GET /_fake/tokenized: the texts it was asked).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiohttp import web

MODEL = "fake-model"
CREATED = 1_700_000_000
WORDS = ["Hello", " wörld", " 🙂", " ünïcode", " text", " and", " more", " tokens"]

REQUESTS: list[dict[str, Any]] = []
SESSIONS: list[dict[str, Any]] = []
STATE: dict[str, float] = {"health": 200, "status": 0, "models_delay": 0.0}
MODELS = [MODEL]
OWNER = ["fake"]  # each model's owned_by in GET /v1/models (vLLM says vllm; --owned-by)
PROBES: list[float] = []  # when GET /health was called


def content_for(index: int) -> str:
    return WORDS[index % len(WORDS)]


def chat_chunk(index: int, content: str | None, finish: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {} if content is None else {"content": content}
    if index == 0:
        delta["role"] = "assistant"
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def completion_chunk(content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "text": content, "finish_reason": finish, "logprobs": None}],
    }


def usage(n: int, cached: int | None = None) -> dict[str, Any]:
    counts: dict[str, Any] = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}
    if cached is not None:
        counts["prompt_tokens_details"] = {"cached_tokens": cached}
    return counts


def sse(payload: Any) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def error_response(status: int, kind: str) -> web.Response:
    if kind == "traceback":
        message = (
            "Traceback (most recent call last):\n"
            '  File "/opt/engine/llama_cpp/server/app.py", line 412, in create_chat_completion\n'
            "    raise ValueError(msg)\n"
            "ValueError: Requested tokens (9000) exceed context window of 2048"
        )
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": "messages",
                "code": None,
            }
        }
        return web.json_response(body, status=status)
    if kind == "text":
        return web.Response(status=status, text="engine exploded at /srv/engine/worker.py")
    if kind == "html":
        return web.Response(
            status=status, text="<html><body>Bad Gateway</body></html>", content_type="text/html"
        )
    if kind == "flat":  # vLLM's older ErrorResponse shape
        body = {
            "object": "error",
            "message": "flat error",
            "type": "BadRequestError",
            "code": status,
        }
        return web.json_response(body, status=status)
    body = {
        "error": {
            "message": f"fake error {status}",
            "type": "invalid_request_error",
            "param": "model",
            "code": "fake_code",
        }
    }
    headers = {"Retry-After": "7"} if status in (429, 503) else None
    return web.json_response(body, status=status, headers=headers)


def record(request: web.Request, body: bytes) -> dict[str, Any]:
    entry = {
        "method": request.method,
        "path": request.path_qs,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": body.decode("utf-8", "replace"),
        "completed": False,
        "disconnected": False,
        "sent_bytes": 0,  # of a stream: what the engine has written so far
        "started_at": time.time(),
    }
    REQUESTS.append(entry)
    return entry


async def stream(
    request: web.Request, entry: dict[str, Any], events: list[bytes]
) -> web.StreamResponse:
    headers = request.headers
    delay = float(headers.get("X-Fake-Delay-Ms", "0")) / 1000
    split = int(headers.get("X-Fake-Split", "0"))
    abort_after = int(headers.get("X-Fake-Abort-After", "-1"))
    hang = headers.get("X-Fake-Hang") == "1"
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    try:
        await response.prepare(request)  # the gateway may be gone already
        if split > 0:
            data = b"".join(events)
            if abort_after >= 0:
                data = (
                    b"".join(events[:abort_after])
                    + events[abort_after][: len(events[abort_after]) // 2]
                )
            for start in range(0, len(data), split):
                await response.write(data[start : start + split])
                entry["sent_bytes"] += len(data[start : start + split])
                if delay:
                    await asyncio.sleep(delay)
            if abort_after >= 0:
                request.transport.close()
                return response
        else:
            for i, event in enumerate(events):
                if i == abort_after:
                    await response.write(event[: len(event) // 2])
                    await asyncio.sleep(0.05)
                    request.transport.close()
                    return response
                await response.write(event)
                entry["sent_bytes"] += len(event)
                if hang and i == 0:
                    await asyncio.sleep(3600)
                if delay:
                    await asyncio.sleep(delay)
        if headers.get("X-Fake-Abort-After-Done") == "1":
            request.transport.close()
            return response
        await response.write_eof()
        entry["completed"] = True
    except (ConnectionResetError, asyncio.CancelledError):
        entry["disconnected"] = True
        entry["disconnected_at"] = time.time()
        raise
    return response


async def guard(request: web.Request) -> tuple[dict[str, Any], bytes, web.Response | None]:
    body = await request.read()
    entry = record(request, body)
    headers = request.headers
    try:
        if sleep := float(headers.get("X-Fake-Sleep-Ms", "0")):
            await asyncio.sleep(sleep / 1000)
    except asyncio.CancelledError:
        entry["disconnected"] = True
        entry["disconnected_at"] = time.time()
        raise
    if status := int(headers.get("X-Fake-Status", "0")) or STATE["status"]:
        return entry, body, error_response(status, headers.get("X-Fake-Error", "openai"))
    return entry, body, None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    entry, body, early = await guard(request)
    if early is not None:
        return early
    try:
        payload = json.loads(body)
    except ValueError:
        return web.json_response(
            {
                "error": {
                    "message": "bad json",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
            status=400,
        )
    n = int(request.headers.get("X-Fake-Chunks", "5"))
    if payload.get("stream"):
        continuous = (payload.get("stream_options") or {}).get("continuous_usage_stats")
        # vLLM's continuous_usage_stats: the usage so far in every chunk
        repeat = int(request.headers.get("X-Fake-Repeat", "1"))
        events = [
            sse(
                {
                    **chat_chunk(i, content_for(i) * repeat),
                    **({"usage": usage(i + 1)} if continuous else {}),
                }
            )
            for i in range(n)
        ]
        events.append(sse(chat_chunk(n, None, "stop")))
        no_usage = request.headers.get("X-Fake-No-Usage") == "1"
        if (payload.get("stream_options") or {}).get("include_usage") and not no_usage:
            final = usage(n, cached_of(request))
            events.append(sse({**chat_chunk(n, None), "choices": [], "usage": final}))
        events.append(sse("[DONE]"))
        return await stream(request, entry, events)
    text = "".join(content_for(i) for i in range(n))
    entry["completed"] = True
    return web.json_response(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            **(
                {}
                if request.headers.get("X-Fake-No-Usage") == "1"
                else {"usage": usage(n, cached_of(request))}
            ),
        },
        dumps=lambda o: json.dumps(o, ensure_ascii=False),
    )


def cached_of(request: web.Request) -> int | None:
    cached = request.headers.get("X-Fake-Cached")
    return int(cached) if cached is not None else None


async def completions(request: web.Request) -> web.StreamResponse:
    entry, body, early = await guard(request)
    if early is not None:
        return early
    payload = json.loads(body)
    n = int(request.headers.get("X-Fake-Chunks", "5"))
    if payload.get("stream"):
        events = [sse(completion_chunk(content_for(i))) for i in range(n)]
        events.append(sse(completion_chunk("", "stop")))
        events.append(sse("[DONE]"))
        return await stream(request, entry, events)
    entry["completed"] = True
    text = "".join(content_for(i) for i in range(n))
    return web.json_response({**completion_chunk(text, "stop"), "usage": usage(n)})


def responses_event(kind: str, **fields: Any) -> bytes:
    data = json.dumps({"type": kind, **fields}, ensure_ascii=False)
    return f"event: {kind}\ndata: {data}\n\n".encode()


async def responses(request: web.Request) -> web.StreamResponse:
    """The Responses API: a plain answer, or its event stream ending in response.completed."""
    entry, body, early = await guard(request)
    if early is not None:
        return early
    n = int(request.headers.get("X-Fake-Chunks", "5"))
    words = [content_for(i) for i in range(n)]
    usage_ = {
        "input_tokens": 9,
        "output_tokens": n,
        "total_tokens": 9 + n,
        "input_tokens_details": {"cached_tokens": 4},
    }
    final = {
        "id": "resp-fake",
        "object": "response",
        "model": MODEL,
        "status": "completed",
        "output": [
            {"type": "message", "content": [{"type": "output_text", "text": "".join(words)}]}
        ],
        "usage": None if request.headers.get("X-Fake-No-Usage") == "1" else usage_,
    }
    if not json.loads(body).get("stream"):
        entry["completed"] = True
        return web.json_response(final, dumps=lambda o: json.dumps(o, ensure_ascii=False))
    events = [
        responses_event(
            "response.created", response={**final, "status": "in_progress", "usage": None}
        )
    ]
    events += [responses_event("response.output_text.delta", delta=word) for word in words]
    events.append(responses_event("response.completed", response=final))
    return await stream(request, entry, events)


TOKENIZER = {"kind": ""}
TOKENIZED: list[str] = []
TOKENIZE_FIELDS = {"vllm": "prompt", "llama.cpp": "content", "llama-cpp-python": "input"}


async def tokenize(request: web.Request) -> web.Response:
    """A tokenizer that counts words: the test knows what the gateway should report."""
    payload = await request.json()
    field = TOKENIZE_FIELDS.get(TOKENIZER["kind"], "")
    text = payload.get(field)
    if not isinstance(text, str):
        return web.json_response({"error": {"message": f"no {field}"}}, status=400)
    TOKENIZED.append(text)
    tokens = list(range(len(text.split())))
    found: dict[str, Any] = {"tokens": tokens}
    if TOKENIZER["kind"] == "vllm":
        found["count"] = len(tokens)
    return web.json_response(found)


async def fake_tokenized(request: web.Request) -> web.Response:
    return web.json_response(TOKENIZED)


async def embeddings(request: web.Request) -> web.StreamResponse:
    entry, body, early = await guard(request)
    if early is not None:
        return early
    entry["completed"] = True
    return web.json_response(
        {
            "object": "list",
            "model": MODEL,
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
            "usage": {"prompt_tokens": 3, "total_tokens": 3},
        }
    )


async def models(request: web.Request) -> web.StreamResponse:
    entry, _, early = await guard(request)
    if early is not None:
        return early
    if STATE.get("models_delay"):
        await asyncio.sleep(STATE["models_delay"])
    entry["completed"] = True
    names = (
        request.headers["X-Fake-Models"].split(",")
        if "X-Fake-Models" in request.headers
        else MODELS
    )
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": CREATED, "owned_by": OWNER[0]}
                for name in names
            ],
        }
    )


async def echo(request: web.Request) -> web.StreamResponse:
    entry, body, early = await guard(request)
    if early is not None:
        return early
    entry["completed"] = True
    return web.json_response(
        {"method": request.method, "path": request.path_qs, "body": body.decode("utf-8", "replace")}
    )


async def health(request: web.Request) -> web.Response:
    PROBES.append(time.time())
    return web.json_response({"status": STATE["health"]}, status=STATE["health"])


async def fake_requests(request: web.Request) -> web.Response:
    return web.json_response(REQUESTS)


async def fake_probes(request: web.Request) -> web.Response:
    return web.json_response(PROBES)


async def fake_reset(request: web.Request) -> web.Response:
    REQUESTS.clear()
    PROBES.clear()
    SESSIONS.clear()
    return web.json_response({"ok": True})


async def fake_health(request: web.Request) -> web.Response:
    STATE["health"] = int((await request.json())["status"])
    return web.json_response(STATE)


async def realtime(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=("realtime",), max_msg_size=64 * 1024 * 1024)
    await ws.prepare(request)
    session = {
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "query": request.query_string,
        "protocol": ws.ws_protocol,
        "opened_at": time.time(),
        "closed_at": None,
        "close_code": None,
        "frames_sent": 0,  # handed to the socket (a send waits while the gateway reads none)
    }
    SESSIONS.append(session)
    try:
        async for message in ws:
            if message.type == web.WSMsgType.BINARY:
                await ws.send_bytes(message.data)
                continue
            if message.type != web.WSMsgType.TEXT:
                continue
            try:
                event = json.loads(message.data)
            except ValueError:
                event = {}
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "response.create":
                await ws.send_str(json.dumps({"type": "response.created"}))
                usage = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
                done = {
                    "type": "response.done",
                    "response": {"status": "completed", "usage": usage},
                }
                await ws.send_str(json.dumps(done))
            elif kind == "input_audio_buffer.commit":
                usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
                await ws.send_str(
                    json.dumps({"type": "transcription.done", "text": "hi", "usage": usage})
                )
            elif kind == "close":
                await ws.close(code=event["code"], message=event.get("reason", "").encode())
            elif kind == "die":
                assert request.transport is not None
                request.transport.abort()
                break
            elif kind == "big":
                await ws.send_str("x" * int(event["bytes"]))
                session["frames_sent"] += 1
            else:
                await ws.send_str(message.data)
    finally:
        session["closed_at"] = time.time()
        session["close_code"] = ws.close_code
    return ws


async def fake_realtime(request: web.Request) -> web.Response:
    return web.json_response(SESSIONS)


async def fake_status(request: web.Request) -> web.Response:
    STATE["status"] = int((await request.json())["status"])
    return web.json_response(STATE)


def anthropic_event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


async def messages(request: web.Request) -> web.StreamResponse:
    """Anthropic's Messages API, as vLLM serves it: usage {input_tokens: 10, output_tokens:
    100}, in the answer, or in a stream's message_start and final message_delta."""
    entry, body, early = await guard(request)
    if early is not None:
        return early
    payload = json.loads(body)
    n = int(request.headers.get("X-Fake-Chunks", "5"))
    text = [content_for(i) for i in range(n)]
    message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": MODEL}
    if payload.get("stream"):
        start = {**message, "content": [], "usage": {"input_tokens": 10, "output_tokens": 1}}
        events = [
            anthropic_event("message_start", {"type": "message_start", "message": start}),
            anthropic_event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            ),
            *(
                anthropic_event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
                for piece in text
            ),
            anthropic_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            anthropic_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 100},
                },
            ),
            anthropic_event("message_stop", {"type": "message_stop"}),
        ]
        return await stream(request, entry, events)
    entry["completed"] = True
    return web.json_response(
        {
            **message,
            "content": [{"type": "text", "text": "".join(text)}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 100},
        }
    )


def make_app(with_health: bool = True) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/_fake/requests", fake_requests)
    app.router.add_post("/_fake/reset", fake_reset)
    app.router.add_get("/_fake/probes", fake_probes)
    app.router.add_post("/_fake/health", fake_health)
    app.router.add_post("/_fake/status", fake_status)
    app.router.add_get("/v1/realtime", realtime)
    app.router.add_get("/_fake/realtime", fake_realtime)
    app.router.add_get("/_fake/tokenized", fake_tokenized)
    if TOKENIZER["kind"] == "llama-cpp-python":
        app.router.add_post("/extras/tokenize", tokenize)
    elif TOKENIZER["kind"]:
        app.router.add_post("/tokenize", tokenize)
    if with_health:
        app.router.add_get("/health", health)
    app.router.add_route("*", "/v1/{tail:.*}", echo)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--no-health", action="store_true", help="no /health, as llama.cpp's server"
    )
    parser.add_argument("--models", default=MODEL, help="what GET /v1/models lists")
    parser.add_argument("--owned-by", default="fake", help="its models' owned_by")
    parser.add_argument("--status", type=int, default=0, help="every API request answers it")
    parser.add_argument(
        "--models-delay-ms", type=float, default=0, help="GET /v1/models waits this long"
    )
    parser.add_argument("--tokenizer", choices=sorted(TOKENIZE_FIELDS), default="")
    args = parser.parse_args()
    TOKENIZER["kind"] = args.tokenizer
    MODELS[:] = args.models.split(",")
    OWNER[0] = args.owned_by
    STATE["status"] = args.status
    STATE["models_delay"] = args.models_delay_ms / 1000
    web.run_app(
        make_app(not args.no_health),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        handler_cancellation=True,  # a handler sees its client leave (the disconnect tests)
    )


if __name__ == "__main__":
    main()
