"""``GET /models`` over several replicas: the union of what they list, each model once (the
first replica's entry wins), a replica with configured models showing only those. Replicas
that are dead or fail to answer are left out; if none answers, the last failure is the answer."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from ..errors import EngineGenerateError, GatewayError
from ..upstream.client import Upstream
from ..upstream.pool import UpstreamPool


async def model_listing(pool: UpstreamPool, headers_for: Any) -> bytes:
    replicas = [u for u in pool.upstreams if not u.health.dead] or pool.upstreams
    answers = await asyncio.gather(
        *(_models_of(upstream, headers_for(upstream)) for upstream in replicas),
        return_exceptions=True,
    )
    merged: dict[str, dict[str, Any]] = {}
    failures = [answer for answer in answers if isinstance(answer, BaseException)]
    if len(failures) == len(answers):
        raise failures[-1]
    for upstream, answer in zip(replicas, answers, strict=True):
        if isinstance(answer, BaseException):
            continue
        for entry in answer:
            model = entry.get("id")
            if isinstance(model, str) and upstream.serves(model) and model not in merged:
                merged[model] = entry
        if upstream.configured_models is not None:
            for model in sorted(upstream.configured_models - merged.keys()):
                merged[model] = {"id": model, "object": "model", "owned_by": upstream.name}
    return orjson.dumps({"object": "list", "data": list(merged.values())})


async def _models_of(upstream: Upstream, headers: list[tuple[str, str]]) -> list[dict[str, Any]]:
    answer = await upstream.send("GET", upstream.url + "/models", headers=headers, body=None)
    try:
        raw = await answer.read()
    finally:
        answer.release()
    if answer.status != 200:
        raise EngineGenerateError(f"{upstream.name} answered HTTP {answer.status} to /models.")
    try:
        listing = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EngineGenerateError(f"{upstream.name} sent a model list that is not JSON.") from exc
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        raise GatewayError(f"{upstream.name} sent a model list without data.", status=502)
    return [entry for entry in data if isinstance(entry, dict)]
