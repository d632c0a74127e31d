"""An engine that behaves like a saturated GPU, for the fair-share tests and benchmarks:

    python tests/engine_simulator.py --port P [--slots 4] [--prefill-ms-per-token 0.2]
        [--decode-ms-per-token 10] [--model sim-model]

A fixed number of concurrent slots; beyond them requests wait first come, first served, as an
engine's own queue does. A request in a slot takes a prefill delay per prompt token (its
prompt's whitespace-separated words), then a decode delay per output token (``max_tokens``,
default 16). Chat completions, plain or streamed (one event per token, usage at the end), and
``/v1/models``. ``/metrics`` is vLLM's: ``vllm:num_requests_waiting``,
``vllm:num_requests_running`` and ``vllm:kv_cache_usage_perc`` (slots in use / slots), under
the ``engine`` label.

For the tests: ``GET /_sim/requests`` lists what arrived (tenant header ``X-Tenant``, the time
it arrived, got a slot, and ended, how it ended), ``GET /_sim/stats`` the most requests ever
waiting inside, ``POST /_sim/reset`` forgets both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiohttp import web

STATE: dict[str, Any] = {}


def reset() -> None:
    STATE.update(requests=[], max_waiting=0, waiting=0, running=0)


def metrics_text() -> str:
    slots = STATE["slots"]
    model = STATE["model"]
    labels = f'engine="0",model_name="{model}"'
    return (
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        f"vllm:num_requests_running{{{labels}}} {float(STATE['running'])}\n"
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        f"vllm:num_requests_waiting{{{labels}}} {float(STATE['waiting'])}\n"
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
        "# TYPE vllm:kv_cache_usage_perc gauge\n"
        f"vllm:kv_cache_usage_perc{{{labels}}} {STATE['running'] / slots}\n"
    )


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=metrics_text(), content_type="text/plain")


async def models(request: web.Request) -> web.Response:
    return web.json_response(
        {"object": "list", "data": [{"id": STATE["model"], "object": "model"}]}
    )


def prompt_tokens(payload: dict[str, Any]) -> int:
    words = 0
    for message in payload.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            words += len(content.split())
    return max(1, words)


def chunk(index: int, text: str, finish: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-sim",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": STATE["model"],
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def chat(request: web.Request) -> web.StreamResponse:
    payload = await request.json()
    entry = {
        "tenant": request.headers.get("X-Tenant", ""),
        "priority": request.headers.get("X-Gateway-Priority", ""),
        "arrived": time.time(),
        "started": None,
        "ended": None,
        "ending": "waiting",
    }
    STATE["requests"].append(entry)
    slots: asyncio.Semaphore = STATE["semaphore"]
    STATE["waiting"] += 1
    STATE["max_waiting"] = max(STATE["max_waiting"], STATE["waiting"] - STATE["free"]())
    try:
        await slots.acquire()
    except asyncio.CancelledError:
        STATE["waiting"] -= 1
        entry["ending"] = "left_waiting"
        raise
    STATE["waiting"] -= 1
    STATE["running"] += 1
    entry["started"] = time.time()
    try:
        prompt = prompt_tokens(payload)
        output = int(payload.get("max_tokens") or 16)
        await asyncio.sleep(prompt * STATE["prefill"])
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "total_tokens": prompt + output,
        }
        if not payload.get("stream"):
            await asyncio.sleep(output * STATE["decode"])
            entry["ending"] = "done"
            return web.json_response(
                {
                    "id": "chatcmpl-sim",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": STATE["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "t " * output},
                            "finish_reason": "length",
                        }
                    ],
                    "usage": usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index in range(output):
            await response.write(chunk(index, "t "))
            await asyncio.sleep(STATE["decode"])
        final = json.loads(chunk(output, "", "length")[6:])
        final["usage"] = usage
        await response.write(b"data: " + json.dumps(final).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        entry["ending"] = "done"
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        entry["ending"] = "client_left"
        raise
    finally:
        entry["ended"] = time.time()
        STATE["running"] -= 1
        slots.release()


async def sim_requests(request: web.Request) -> web.Response:
    return web.json_response(STATE["requests"])


async def sim_stats(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "max_waiting": STATE["max_waiting"],
            "waiting": STATE["waiting"],
            "running": STATE["running"],
        }
    )


async def sim_reset(request: web.Request) -> web.Response:
    reset()
    return web.json_response({"reset": True})


def make_app(slots: int, prefill_ms: float, decode_ms: float, model: str) -> web.Application:
    semaphore = asyncio.Semaphore(slots)
    STATE.update(
        slots=slots,
        semaphore=semaphore,
        free=lambda: semaphore._value,  # noqa: SLF001 (free slots: a request waits only without)
        prefill=prefill_ms / 1000,
        decode=decode_ms / 1000,
        model=model,
    )
    reset()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", lambda request: web.Response(text="ok"))
    app.router.add_get("/_sim/requests", sim_requests)
    app.router.add_get("/_sim/stats", sim_stats)
    app.router.add_post("/_sim/reset", sim_reset)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--prefill-ms-per-token", type=float, default=0.2)
    parser.add_argument("--decode-ms-per-token", type=float, default=10.0)
    parser.add_argument("--model", default="sim-model")
    args = parser.parse_args()

    async def build() -> web.Application:
        return make_app(args.slots, args.prefill_ms_per_token, args.decode_ms_per_token, args.model)

    web.run_app(build(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
