"""Graceful drain (llm_gateway.server.drain), end to end: real processes, real signals, paced
streams from the fake engine, under the launcher and under the plain daphne CLI. How long a
drain takes is measured by bench/propagation.py; the bounds here only catch a hang."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import httpx
import pytest

from . import servers
from .waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def start(server_logs):
    """Starts gateways for one test; every one is stopped at its end, whatever happened."""
    started: list[servers.Server] = []

    def starting(env, workers: int = 1, **options) -> servers.Server:
        server = servers.daphne(server_logs, env, **options)
        if workers > 1:
            server.argv[3:3] = ["--workers", str(workers)]
        started.append(server)
        return server.start()

    yield starting
    for server in started:
        server.stop()


STREAM = {
    "model": "fake-model",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
}


class Streams:
    """Paced streams read in threads: each one's text, and whether it began and ended."""

    def __init__(self, gateway, key, count, chunks=20, delay_ms=50):
        self.bodies: list[str] = [""] * count
        self.started = [threading.Event() for _ in range(count)]
        self.errors: list[BaseException | None] = [None] * count
        headers = {
            "Authorization": f"Bearer {key}",
            "X-Fake-Chunks": str(chunks),
            "X-Fake-Delay-Ms": str(delay_ms),
        }
        self.threads = [
            threading.Thread(target=self._read, args=(gateway, headers, i), daemon=True)
            for i in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def _read(self, gateway, headers, index):
        try:
            with httpx.stream(
                "POST", gateway.api + "/chat/completions", json=STREAM, headers=headers, timeout=60
            ) as response:
                for chunk in response.iter_text():
                    self.started[index].set()
                    self.bodies[index] += chunk
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            self.errors[index] = exc
            self.started[index].set()

    def wait_started(self, timeout=10.0):
        assert all(event.wait(timeout) for event in self.started)

    def join(self, timeout=30.0):
        for thread in self.threads:
            thread.join(timeout)


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return False
    except OSError:
        return True


@pytest.mark.parametrize("launcher", [True, False], ids=["launcher", "plain-daphne"])
def test_a_drain_lets_every_stream_finish_and_refuses_new_connections(
    gateway_env, start, api_key, launcher
):
    gateway = start(gateway_env, launcher=launcher)
    keep_alive = httpx.Client(base_url=gateway.url, timeout=10)
    assert keep_alive.get("/live").status_code == 200  # a connection open before the drain
    streams = Streams(gateway, api_key, 20, chunks=30, delay_ms=50)  # 1.5 s each
    streams.wait_started()
    gateway.process.send_signal(signal.SIGTERM)
    assert wait_until(lambda: refused(gateway.port), 30, every=0.005)
    # A new request on the open keep-alive connection: 503, and the connection closes.
    late = keep_alive.post(
        "/v1/chat/completions", json=STREAM, headers={"Authorization": f"Bearer {api_key}"}
    )
    assert late.status_code == 503 and late.headers["connection"] == "close"
    assert late.json()["error"]["code"] == "server_shutting_down"
    streams.join()
    assert gateway.process.wait(timeout=30) == 0
    assert streams.errors == [None] * 20
    assert all(body.rstrip().endswith("data: [DONE]") for body in streams.bodies)
    assert all(body.count("data: {") >= 30 for body in streams.bodies)
    keep_alive.close()


def test_the_deadline_ends_open_streams_with_an_error_and_closes_the_engine(
    gateway_env, start, api_key, fake_requests
):
    gateway = start({**gateway_env, "LLM_GATEWAY_DRAIN_SECONDS": "0.5"})
    streams = Streams(gateway, api_key, 3, chunks=100, delay_ms=100)  # 10 s each
    streams.wait_started()
    signalled = time.monotonic()
    gateway.process.send_signal(signal.SIGTERM)
    streams.join()
    assert gateway.process.wait(timeout=30) == 0
    assert time.monotonic() - signalled >= 0.5  # not cut before the deadline
    for body in streams.bodies:
        assert '"code":"server_shutting_down"' in body and "[DONE]" not in body
    seen = [r for r in fake_requests() if r["path"] == "/v1/chat/completions"][-3:]
    assert all(r["disconnected"] for r in seen)  # the engine's requests were closed


def test_a_second_signal_skips_the_wait(gateway_env, start, api_key):
    gateway = start({**gateway_env, "LLM_GATEWAY_DRAIN_SECONDS": "300"})
    streams = Streams(gateway, api_key, 2, chunks=100, delay_ms=100)
    streams.wait_started()
    gateway.process.send_signal(signal.SIGTERM)
    assert wait_until(lambda: refused(gateway.port), 30, every=0.005)  # draining now
    gateway.process.send_signal(signal.SIGINT)
    assert gateway.process.wait(timeout=30) == 0  # well before the 300 s deadline
    streams.join()
    assert all('"code":"server_shutting_down"' in body for body in streams.bodies)


def test_workers_drain_together_and_leave_no_orphan(gateway_env, start, api_key):
    gateway = start(gateway_env, workers=2)
    pids = wait_until(
        lambda: (
            _children(gateway.process.pid) if len(_children(gateway.process.pid)) == 2 else None
        ),
        30,
    )
    assert pids and len(pids) == 2
    streams = Streams(gateway, api_key, 10, chunks=20, delay_ms=50)
    streams.wait_started()
    gateway.process.send_signal(signal.SIGTERM)
    assert wait_until(lambda: refused(gateway.port), 30, every=0.01)
    streams.join()
    assert gateway.process.wait(timeout=30) == 0
    assert streams.errors == [None] * 10
    assert all(body.rstrip().endswith("data: [DONE]") for body in streams.bodies)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []
