"""Behind a real nginx (Debian's package; .ci/run installs it), with the settings the README
documents: streams unbuffered, the real client's address from X-Forwarded-For, believed only
from LLM_GATEWAY_TRUSTED_PROXIES."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import httpx
import pytest

from llm_gateway.models import RequestLog

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CLIENT_ADDRESS = "127.0.0.5"  # the test's client: neither nginx's address nor the gateway's
CONF = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    upstream gateway {{
        server 127.0.0.1:{gateway};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_read_timeout 3600s;
            client_max_body_size 32m;
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def gateway(gateway_env, server_logs):
    env = {
        **gateway_env,
        "LLM_GATEWAY_TRUSTED_PROXIES": "127.0.0.1",
        "LLM_GATEWAY_REQUEST_LOG": "true",
    }
    server = servers.daphne(server_logs, env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nginx(gateway, tmp_path_factory):
    if not shutil.which("nginx") and not shutil.which(NGINX):
        pytest.skip("nginx is not installed (apt-get install nginx-light; .ci/run does)")
    prefix = tmp_path_factory.mktemp("nginx")
    port = servers.free_port()
    (prefix / "nginx.conf").write_text(CONF.format(prefix=prefix, gateway=gateway.port, port=port))
    with (prefix / "stderr.log").open("wb") as log:
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stderr=log,
        )
    servers.wait_for_port(port, process)  # type: ignore[arg-type]
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


def client(**kwargs) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS)
    return httpx.Client(transport=transport, timeout=20, **kwargs)


def first_tokens(base: str, key: str) -> tuple[float, float, str]:
    """Seconds to the first and the second token event of a paced stream, and the body."""
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"Authorization": f"Bearer {key}", "X-Fake-Delay-Ms": "200", "X-Fake-Chunks": "3"}
    arrivals, text = [], ""
    with client() as http:
        started = time.perf_counter()
        with http.stream("POST", base + "/v1/chat/completions", json=body, headers=headers) as r:
            for chunk in r.iter_text():
                text += chunk
                while len(arrivals) < text.count('"content"'):
                    arrivals.append(time.perf_counter() - started)
    return arrivals[0], arrivals[1], text


def test_a_stream_goes_through_unbuffered(gateway, nginx, api_key):
    direct_first, direct_second, _ = first_tokens(gateway.url, api_key)
    first, second, text = first_tokens(nginx, api_key)
    assert text.rstrip().endswith("data: [DONE]")
    assert first < direct_first + 0.05, (first, direct_first)  # within a few ms, not buffered
    assert second - first > 0.15  # the events came as they were made, not all at the end
    print(f"TTFT direct {direct_first * 1000:.1f} ms, through nginx {first * 1000:.1f} ms")


def logged_client(request_id: str) -> str:
    row = wait_until(lambda: RequestLog.objects.filter(request_id=request_id).first(), 5)
    assert row is not None
    return row.client


def test_the_real_client_address_is_logged_and_spoofing_changes_nothing(gateway, nginx, api_key):
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    cases = [
        # (where, headers sent by the client, the address the gateway must log)
        (nginx, {}, CLIENT_ADDRESS),  # nginx is trusted: its X-Forwarded-For is believed
        (nginx, {"X-Forwarded-For": "6.6.6.6"}, CLIENT_ADDRESS),  # nginx appends the real one
        (gateway.url, {"X-Forwarded-For": "6.6.6.6"}, CLIENT_ADDRESS),  # not a proxy: ignored
    ]
    with client() as http:
        for base, headers, expected in cases:
            request_id = f"proxy-{uuid.uuid4().hex[:12]}"
            answer = http.post(
                base + "/v1/chat/completions",
                json=body,
                headers={
                    "Authorization": f"Bearer {api_key}",
                    "X-Request-Id": request_id,
                    **headers,
                },
            )
            assert answer.status_code == 200
            assert logged_client(request_id) == expected, (base, headers)
            line = wait_until(
                lambda request_id=request_id: next(
                    (
                        ln
                        for ln in gateway.output().splitlines()
                        if request_id in ln and "llm_gateway.access" in ln
                    ),
                    None,
                ),
                5,
            )
            assert line is not None and f"{expected}:" in line and "6.6.6.6" not in line, line
