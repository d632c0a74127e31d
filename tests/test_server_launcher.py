"""The launcher (python -m llm_gateway.run): daphne on uvloop, and N workers on one port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from llm_gateway.server.launcher import _take_option

from . import servers
from .waiting import wait_until


def test_take_option_forms():
    argv = ["-v", "0", "--workers", "2", "-b=1.2.3.4", "-p", "9", "app"]
    assert _take_option(argv, "--workers") == "2"
    assert _take_option(argv, "-b", "--bind") == "1.2.3.4"
    assert _take_option(argv, "-p", "--port") == "9"
    assert _take_option(argv, "--missing") is None
    assert argv == ["-v", "0", "app"]


def test_uvloop_is_the_loop_unless_disabled():
    code = (
        "from llm_gateway.server.launcher import use_uvloop; import asyncio; "
        "print(use_uvloop(), type(asyncio.new_event_loop()).__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["True", "uvloop"]
    env = {**os.environ, "LLM_GATEWAY_UVLOOP": "false"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.split()[0] == "False" and "uvloop" not in out


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_two_workers_share_one_port(gateway_env, server_logs, api_key):
    server = servers.daphne(server_logs, {**gateway_env, "LLM_GATEWAY_LOG_FORMAT": "json"})
    server.argv[3:3] = ["--workers", "2"]
    server.start()
    try:
        assert server.process is not None
        deadline = time.monotonic() + 20
        workers: list[int] = []
        while len(workers) < 2 and time.monotonic() < deadline:
            out = subprocess.run(
                ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True
            )
            workers = [int(p) for p in out.stdout.split()]
            time.sleep(0.1)
        assert len(workers) == 2

        def call(i: int) -> int:
            # A new connection each, eight at a time: the kernel spreads them over the workers.
            headers = {"Authorization": f"Bearer {api_key}", "Connection": "close"}
            return httpx.get(server.url + "/v1/models", headers=headers).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(call, range(200))) == {200}

        def served_by() -> set[int]:
            lines = [json.loads(x) for x in server.output().splitlines() if x.startswith("{")]
            return {x["process"] for x in lines if x.get("logger") == "llm_gateway.access"}

        served = wait_until(lambda: served_by() == set(workers) and served_by()) or served_by()
        assert served == set(workers), (served, workers)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
        for pid in workers:  # gone, or at most a zombie awaiting its parent's reaping
            stat = Path(f"/proc/{pid}/stat")
            assert not stat.exists() or stat.read_text().split()[2] == "Z"
    finally:
        server.stop()


def test_ipv6_is_bound_by_daphne_and_workers_refuse_it():
    from llm_gateway.server.launcher import is_ipv6, run_workers

    assert is_ipv6("::1") and not is_ipv6("127.0.0.1")
    with pytest.raises(SystemExit, match="IPv4"):
        run_workers(2, ["-b", "::1", "-p", "0", "project.asgi:application"])
