"""PostgreSQL unreachable in the middle of a run, then back (issue 17): cached keys keep
working, a new key is a clear 503, the request log queues its rows and writes them once the
database answers again, and a revocation made then is seen: no restart.

PostgreSQL is reached through a TCP relay that the test cuts and restores (``Forward``), so
the outage is a real one: refused connections and broken ones."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from django.db import connection

from llm_gateway.models import ApiKey, RequestLog

from . import servers
from .conftest import database_url
from .netns import Forward
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def relayed_database():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): a SQLite file cannot become unreachable")
    url = urlsplit(database_url())
    port = servers.free_port()
    relay_url = urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{port}"))
    target = (url.hostname or "127.0.0.1", url.port or 5432)
    return relay_url, port, target


def test_postgres_down_mid_run_then_back_without_a_restart(
    relayed_database, gateway_env, server_logs
):
    relay_url, port, target = relayed_database
    key, raw = ApiKey.create(f"outage-{os.urandom(3).hex()}")
    env = {
        **gateway_env,
        "DATABASE_URL": relay_url,
        "LLM_GATEWAY_REQUEST_LOG": "true",
        "LLM_GATEWAY_KEY_CACHE_SECONDS": "0.25",
    }
    tag = f"pg-{os.urandom(3).hex()}"
    relays = [Forward("127.0.0.1", port, *target).__enter__()]
    gateway = servers.daphne(server_logs, env).start()
    auth = {"Authorization": f"Bearer {raw}"}

    def chat(request_id: str, headers: dict[str, str] = auth) -> httpx.Response:
        return httpx.post(
            gateway.api + "/chat/completions",
            json=CHAT,
            headers={**headers, "X-Request-Id": request_id},
            timeout=10,
        )

    def logged(prefix: str) -> int:
        return RequestLog.objects.filter(request_id__startswith=prefix).count()

    try:
        assert all(chat(f"{tag}-up-{i}").status_code == 200 for i in range(3))
        assert wait_until(lambda: logged(f"{tag}-up-") == 3, timeout=10)

        relays.pop().__exit__()  # PostgreSQL is gone: refused and broken connections
        answers = [chat(f"{tag}-down-{i}") for i in range(20)]  # each within its timeout
        assert [a.status_code for a in answers] == [200] * 20  # the cached key works
        unknown = httpx.post(
            gateway.api + "/chat/completions",
            json=CHAT,
            headers={"Authorization": "Bearer sk-00000000-" + "a" * 43},
            timeout=10,
        )
        assert unknown.status_code == 503, unknown.text  # cannot be checked: not a 401
        assert unknown.json()["error"]["code"] == "key_store_unavailable"
        assert logged(f"{tag}-down-") == 0
        tried = wait_until(lambda: "request log unwritable" in gateway.output(), timeout=5)
        assert tried, "the request log never tried the database during the outage"

        relays.append(Forward("127.0.0.1", port, *target).__enter__())  # back, same address
        # The queued rows are written once the database answers again.
        assert wait_until(lambda: logged(f"{tag}-down-") == 20, timeout=15), logged(f"{tag}-down-")
        assert chat(f"{tag}-back").status_code == 200
        key.revoked_at = key.created_at
        key.save(update_fields=["revoked_at"])
        refused = wait_until(lambda: chat(f"{tag}-revoked").status_code == 401, timeout=3)
        assert refused, "a revocation made after the outage was not seen"
        output = gateway.output()
        assert output.count("request log unwritable") == 1  # one warning, not one per batch
        assert "request log written again (0 rows dropped meanwhile)" in output
        assert output.count("API key store unreachable, serving cached keys") == 1
        assert output.count("API key store reachable again") == 1
    finally:
        gateway.stop()
        for relay in relays:
            relay.__exit__()
