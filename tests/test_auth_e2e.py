"""Authentication and request ids over real HTTP, against daphne serving project.asgi."""

from __future__ import annotations

import socket
import time

import pytest

from llm_gateway.models import ApiKey

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def raw_http(
    port: int, target: str, host: str = "localhost", method: str = "GET", headers: str = ""
) -> tuple[int, bytes]:
    """Send bytes exactly as written: paths and Host headers no client library would send."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
        sock.sendall(head.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("/v1/models", "localhost/health?"),
        ("/v1/models", "localhost/health#"),
        ("/v1/models", "localhost:80/health"),
        ("//v1/models", "localhost"),
        ("/v1/../v1/models", "localhost"),
        ("/health/../v1/models", "localhost"),
        ("/./v1/models", "localhost"),
        ("/%76%31/models", "localhost"),
        ("/v1%2Fmodels", "localhost"),
        ("/v1/models?x=/health", "localhost"),
    ],
)
def test_bypass_attempts_are_refused(gateway, api_key, target, host):
    status, data = raw_http(gateway.port, target, host)
    assert status == 401, data
    assert b'"authentication_error"' in data
    # The same request with a key gets through to the relay (so the path really was /v1).
    status, data = raw_http(
        gateway.port, target, host, headers=f"Authorization: Bearer {api_key}\r\n"
    )
    assert status == 200, data


def test_absolute_form_target_never_reaches_the_relay(gateway, api_key):
    """daphne keeps the scheme and host in scope["path"]: Django gets it, and answers 404."""
    for headers in ("", f"Authorization: Bearer {api_key}\r\n"):
        status, data = raw_http(gateway.port, "http://localhost/v1/models", headers=headers)
        assert status == 404 and b"fake-model" not in data


def test_unguarded_paths_and_preflight(gateway, fake_requests):
    with servers.client(gateway) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/admin/").status_code == 302  # the admin login, not a 401
        r = client.options(
            "/v1/chat/completions",
            headers={"Origin": "http://x", "Access-Control-Request-Method": "POST"},
        )
        # A preflight needs no key and never goes to the engine: the gateway answers it.
        assert r.status_code == 204 and "POST" in r.headers["allow"]
        assert fake_requests() == []


def test_401_is_openai_shaped_and_never_echoes_the_key(gateway):
    with servers.client(gateway) as client:
        for auth in [
            "Bearer sk-0123abcd-secretsecretsecretsecretsecretsecretsecretse",
            "Basic c2VjcmV0",
            "Bearer",
        ]:
            r = client.get("/v1/models", headers={"Authorization": auth})
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}
            assert "secret" not in r.text and "c2VjcmV0" not in r.text


def test_request_id_echoed_generated_replaced(gateway, api_key):
    with servers.client(gateway) as client:
        r = client.get(
            "/v1/models", headers={"X-Request-Id": "my-id-1", "Authorization": f"Bearer {api_key}"}
        )
        assert r.headers.get_list("x-request-id") == ["my-id-1"]
        r = client.get("/v1/models")  # a 401 carries it too
        (generated,) = r.headers.get_list("x-request-id")
        assert len(generated) == 32
        r = client.get("/health", headers={"X-Request-Id": "x" * 129})
        (replaced,) = r.headers.get_list("x-request-id")
        assert replaced != "x" * 129 and len(replaced) == 32
        r = client.get("/health", headers={"X-Request-Id": "ok~id"})
        assert r.headers.get_list("x-request-id") == ["ok~id"]


def test_revocation_is_seen_by_every_process_without_a_restart(gateway, gateway_env, server_logs):
    """Each process's refresher sees it (within KEY_CACHE_SECONDS plus a query: how soon is
    measured by bench/propagation.py); the bound here only catches a hang."""
    key, raw = ApiKey.create("revoke-me")
    second = servers.daphne(server_logs, gateway_env).start()
    try:
        clients = [
            servers.client(s, headers={"Authorization": f"Bearer {raw}"}) for s in (gateway, second)
        ]
        assert [c.get("/v1/models").status_code for c in clients] == [200, 200]
        key.revoke()
        revoked_at = time.monotonic()
        seen = {}
        while len(seen) < 2 and time.monotonic() - revoked_at < 30:
            for i, client in enumerate(clients):
                if i not in seen and client.get("/v1/models").status_code == 401:
                    seen[i] = time.monotonic() - revoked_at
            time.sleep(0.02)
        assert sorted(seen) == [0, 1], seen
        for client in clients:
            assert "revoked" in client.get("/v1/models").json()["error"]["message"]
            client.close()
    finally:
        second.stop()


def test_expired_key_is_refused(gateway):
    import datetime as dt

    from django.utils import timezone

    _, raw = ApiKey.create("short-lived", expires_at=timezone.now() + dt.timedelta(seconds=1))
    with servers.client(gateway, headers={"Authorization": f"Bearer {raw}"}) as client:
        assert client.get("/v1/models").status_code == 200
        r = wait_until(lambda: (r := client.get("/v1/models")).status_code == 401 and r, 5)
        assert r and r.status_code == 401 and "expired" in r.json()["error"]["message"]


def test_static_keys_from_the_environment(gateway_env, server_logs):
    server = servers.daphne(
        server_logs,
        {**gateway_env, "LLM_GATEWAY_API_KEYS": "static-one-0123456789, static-two-0123456789"},
    ).start()
    try:
        with servers.client(server) as client:
            assert (
                client.get(
                    "/v1/models", headers={"Authorization": "Bearer static-two-0123456789"}
                ).status_code
                == 200
            )
            assert (
                client.get(
                    "/v1/models", headers={"Authorization": "Bearer static-three-012345678"}
                ).status_code
                == 401
            )
        assert "static-two" not in server.output()
    finally:
        server.stop()


def test_websocket_under_v1_without_a_key_is_refused(gateway):
    handshake = (
        "GET /v1/realtime HTTP/1.1\r\nHost: localhost\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(handshake.encode())
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 403"), answer
