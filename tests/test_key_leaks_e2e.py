"""No key anywhere it should not be (issue 17): one run through both faces uses every
feature with a real database key (plain, streamed, refused by a limit, engine errors, a wrong
secret under the right prefix, a revoked key, realtime with the key in the subprotocol), then
every place a key could surface is searched for it: every answer's body and headers, the
metrics (with key labels on), every request-log row, every admin page, the server output.
The key's prefix is its public name and may appear; its secret part never. (A key a client
sends as data, in a path or a model name, is logged as the data it was sent as.)"""

from __future__ import annotations

import json
import os

import httpx
import pytest
from django.urls import reverse
from django.utils import timezone
from websockets.sync.client import connect

from llm_gateway.models import ApiKey, RequestLog

from . import servers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


def traffic(gateway, raw: str, limited_raw: str, revoked_raw: str) -> list[bytes]:
    """Every kind of request, through one face; every answer as bytes (headers and body)."""
    auth = {"Authorization": f"Bearer {raw}"}
    prefix = raw[: raw.index("-", 3) + 1]
    wrong_secret = prefix + "x" * (len(raw) - len(prefix))
    seen: list[bytes] = []
    with httpx.Client(base_url=gateway.api, timeout=10) as client:
        calls = [
            ("POST", "/chat/completions", {"json": CHAT, "headers": auth}),
            ("POST", "/chat/completions", {"json": {**CHAT, "stream": True}, "headers": auth}),
            ("GET", "/models", {"headers": auth}),
            ("POST", "/chat/completions", {"content": b"{bad", "headers": auth}),
            (
                "POST",
                "/chat/completions",
                {"json": CHAT, "headers": {**auth, "X-Fake-Status": "500", "X-Fake-Error": "text"}},
            ),
            ("POST", "/chat/completions", {"json": CHAT, "headers": {"Authorization": raw}}),
            ("POST", "/chat/completions", {"json": CHAT, "headers": {"X-Api-Key": raw}}),
            (
                "POST",
                "/chat/completions",
                {"json": CHAT, "headers": {"Authorization": f"Bearer {wrong_secret}"}},
            ),
            (
                "POST",
                "/chat/completions",
                {"json": CHAT, "headers": {"Authorization": f"Bearer {revoked_raw}"}},
            ),
            *[
                (
                    "POST",
                    "/chat/completions",
                    {"json": CHAT, "headers": {"Authorization": f"Bearer {limited_raw}"}},
                )
            ]
            * 3,
        ]
        for method, path, kwargs in calls:
            response = client.request(method, path, **kwargs)
            seen.append(json.dumps(dict(response.headers)).encode() + response.content)
        statuses = [json.loads(s[s.index(b"}") + 1 :] or b"{}") for s in seen[5:9]]
        assert all("error" in s for s in statuses)  # each of those was refused
    url = f"ws://127.0.0.1:{gateway.port}{gateway.api_path}/realtime?model=fake-model"
    offered = ["realtime", f"openai-insecure-api-key.{raw}"]
    with connect(url, subprotocols=offered) as ws:
        ws.send(json.dumps({"type": "response.create"}))
        seen.append(str(ws.recv()).encode() + str(ws.recv()).encode())
        seen.append(json.dumps(dict(ws.response.headers)).encode())
    return seen


def test_no_key_in_any_answer_metric_log_row_admin_page_or_output(
    gateway_env, server_logs, admin_client
):
    key, raw = ApiKey.create(f"leak-{os.urandom(3).hex()}")
    _, limited_raw = ApiKey.create(f"leak-limited-{os.urandom(3).hex()}", rpm=1)
    revoked, revoked_raw = ApiKey.create(f"leak-revoked-{os.urandom(3).hex()}")
    revoked.revoked_at = timezone.now()
    revoked.save(update_fields=["revoked_at"])
    secrets = [raw, limited_raw, revoked_raw]
    secret_parts = [s[s.index("-", 3) + 1 :] for s in secrets]
    env = {
        **gateway_env,
        "LLM_GATEWAY_REQUEST_LOG": "true",
        "LLM_GATEWAY_METRICS_KEY_LABELS": "true",
        "LLM_GATEWAY_ACCESS_LOG": "true",
    }
    answers: list[bytes] = []
    metrics = ""
    for face in ("fast", "django"):
        gateway = servers.daphne(server_logs, env, face=face).start()
        try:
            answers += traffic(gateway, raw, limited_raw, revoked_raw)
            if face == "fast":
                metrics = httpx.get(gateway.url + "/metrics").text
        finally:
            gateway.stop()  # the request log is written at shutdown at the latest
        output = gateway.output()
        for part in secret_parts:
            assert part not in output, f"a key's secret in the {face} face's output"

    assert f'key="{key.name}"' in metrics  # key labels were on: the name labels the key
    rows = list(RequestLog.objects.filter(key_name__startswith="leak-").values())
    assert len(rows) >= 16, len(rows)  # 9 per face: 5 with the key, 3 limited, 1 realtime
    pages = [
        reverse("admin:llm_gateway_apikey_changelist"),
        reverse("admin:llm_gateway_apikey_change", args=[key.pk]),
        reverse("admin:llm_gateway_requestlog_changelist"),
        reverse("admin:llm_gateway_requestlog_changelist") + f"?q={raw}",
        reverse("admin:llm_gateway_apikey_changelist") + f"?q={raw}",
        reverse("admin:llm_gateway_usage_overview"),
        *[reverse("admin:llm_gateway_requestlog_change", args=[r["id"]]) for r in rows[:10]],
    ]
    html = []
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        html.append(response.content.decode())
    places = {
        "an answer": b"\n".join(answers).decode("utf-8", "replace"),
        "the metrics": metrics,
        "a request-log row": json.dumps(rows, default=str),
        "an admin page": "\n".join(h.replace(raw, "") if "?q=" in h else h for h in html),
    }
    for where, text in places.items():
        for part in secret_parts:
            assert part not in text, f"a key's secret in {where}"
