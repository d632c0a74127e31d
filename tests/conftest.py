from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from asgiref.sync import SyncToAsync
from django.apps import apps
from django.conf import settings
from django.db import connections

from . import servers


def _flush_again_after_a_deadlock() -> None:
    """On PostgreSQL, the test database's flush (one TRUNCATE of every table, between tests)
    can deadlock with a gateway process of a session-scoped fixture reading some of those
    tables at that moment (its key store, its price book): PostgreSQL then aborts one of the
    two, and when it aborts the flush, the next test errors in its set-up (seen once in
    .ci/run's PostgreSQL pass). The gateway's read ends within milliseconds, so the flush is
    run again, up to three times. Relies on django's flush command raising CommandError from
    the database's error (Django 5.2); refuses to run the tests if that is gone."""
    from django.core.management.base import CommandError
    from django.core.management.commands import flush
    from django.db.utils import OperationalError

    handle = flush.Command.handle
    if "couldn't be flushed" not in __import__("inspect").getsource(handle):
        raise RuntimeError("django's flush command changed: check tests/conftest.py's retry")

    def handle_again(self: flush.Command, **options: object) -> None:
        for attempt in range(3):
            try:
                return handle(self, **options)
            except CommandError as exc:
                cause = exc.__cause__
                if attempt == 2 or not isinstance(cause, OperationalError):
                    raise
                if "deadlock detected" not in str(cause):
                    raise
        return None

    flush.Command.handle = handle_again  # type: ignore[method-assign]


_flush_again_after_a_deadlock()

# Under PYTHONDEVMODE asyncio notes every step slower than 0.1 s; on a busy 2-core machine that
# is any step. Those notes go to stderr, not into caplog, where tests count their own records.
_asyncio_log = logging.getLogger("asyncio")
_asyncio_log.propagate = False
_asyncio_log.addHandler(logging.StreamHandler(sys.stderr))


def database_url() -> str:
    """The test database as a URL, for the daphne processes the tests start."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Each test gets a runtime of its own, built from the settings as they are then."""
    config = apps.get_app_config("llm_gateway")
    config.reset()  # type: ignore[attr-defined]
    yield
    config.reset()  # type: ignore[attr-defined]
    # The key store reads through sync_to_async: close what that worker thread opened.
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


UPSTREAM_SECRET = "sk-upstream-secret-never-shown"
# A raw key as keys.generate() makes them: its secret part must never reach any output.
RAW_KEY = re.compile(rb"sk-[0-9a-f]{8}-[A-Za-z0-9_\-]{43}")


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where every server the tests start writes its output; at the end of the session, no
    line of it may hold a raw key or the upstream key (issue 17: over a run of every
    feature)."""
    logs = tmp_path_factory.mktemp("server-logs")
    yield logs
    leaks = [
        path.name
        for path in sorted(logs.iterdir())
        if RAW_KEY.search(data := path.read_bytes()) or UPSTREAM_SECRET.encode() in data
    ]
    assert not leaks, f"a key appears in the output of {leaks}"


@pytest.fixture(scope="session")
def upstream(server_logs: Path) -> Iterator[servers.Server]:
    server = servers.fake_upstream(server_logs).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway_env(
    django_db_setup: None, django_db_blocker: object, upstream: servers.Server
) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url(),
        "LLM_GATEWAY_UPSTREAM_URL": upstream.url + "/v1",
        "LLM_GATEWAY_UPSTREAM_API_KEY": UPSTREAM_SECRET,
        "LLM_GATEWAY_API_KEYS": "",
        "LLM_GATEWAY_KEY_CACHE_SECONDS": "0.25",
        "LLM_GATEWAY_READ_TIMEOUT": "1.5",
        "LLM_GATEWAY_MAX_BODY_BYTES": "65536",
        # Off in the shared gateways: their batches would race the test database's flush
        # between tests (a deadlock on PostgreSQL). The tests of the log start their own.
        "LLM_GATEWAY_REQUEST_LOG": "false",
        # Limits counted apart from any other run's (a shared Redis outlives a test database).
        "LLM_GATEWAY_LIMITS_NAMESPACE": f"test-{os.urandom(4).hex()}",
    }


@pytest.fixture(scope="session")
def fast_gateway(gateway_env: dict[str, str], server_logs: Path) -> Iterator[servers.Server]:
    """One daphne serving project.asgi (the fast path), in front of the fake engine."""
    server = servers.daphne(server_logs, gateway_env).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_gateway(gateway_env: dict[str, str], server_logs: Path) -> Iterator[servers.Server]:
    """One daphne serving the Django face alone (MIDDLEWARE + urls.py, the API at /llm/v1)."""
    server = servers.daphne(server_logs, gateway_env, face="django").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def plain_gateway(gateway_env: dict[str, str], server_logs: Path) -> Iterator[servers.Server]:
    """The fast face served by the plain ``daphne`` CLI (no launcher): the server's patches
    come from the app itself."""
    server = servers.daphne(server_logs, gateway_env, launcher=False).start()
    yield server
    server.stop()


@pytest.fixture
def gateway(fast_gateway: servers.Server) -> servers.Server:
    """The fast path; tests that hold for both faces ask for ``face_gateway``."""
    return fast_gateway


@pytest.fixture(params=["fast", "django"])
def face_gateway(request: pytest.FixtureRequest) -> servers.Server:
    """Each face in turn: the same end-to-end test runs against both."""
    server: servers.Server = request.getfixturevalue(f"{request.param}_gateway")
    return server


@pytest.fixture(params=["fast", "django", "plain"])
def served_gateway(request: pytest.FixtureRequest) -> servers.Server:
    """Each face under the launcher, then the fast face under the plain daphne CLI: what the
    server's patches do holds however daphne was started."""
    server: servers.Server = request.getfixturevalue(f"{request.param}_gateway")
    return server


@pytest.fixture
def fake_requests(upstream: servers.Server) -> Iterator[Callable[[], list[dict]]]:
    httpx.post(upstream.url + "/_fake/reset")

    def seen() -> list[dict]:
        """What clients sent through the gateway (its watchdog's own probes left out)."""
        every = httpx.get(upstream.url + "/_fake/requests").json()
        return [r for r in every if r["headers"].get("user-agent") != "llm-gateway-watchdog"]

    yield seen


@pytest.fixture
def api_key(transactional_db: None) -> str:
    from llm_gateway.models import ApiKey

    _, raw = ApiKey.create(f"test-{os.urandom(4).hex()}")
    return raw
