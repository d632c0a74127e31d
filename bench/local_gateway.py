"""One fake engine (tests/fake_upstream.py) and one gateway (bench/start_gateway.sh) on this
machine, for the benchmarks that drive them themselves: started, waited for, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def engine_and_gateway(
    workdir: Path, engine_port: int, gateway_port: int, key: str, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    """The gateway's process, and the environment it was started with (``env`` on top);
    both stopped (SIGINT, then killed after 30 s) when the block ends."""
    workdir.mkdir(exist_ok=True)
    engine = subprocess.Popen(
        [sys.executable, "tests/fake_upstream.py", "--port", str(engine_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    gateway_env = dict(
        os.environ,
        FAKE_UPSTREAM_URL=f"http://127.0.0.1:{engine_port}/v1",
        BENCH_VAR=str(workdir / "gateway"),
        **env,
    )
    with open(workdir / "gateway.log", "wb") as log:
        gateway = subprocess.Popen(
            ["bash", "bench/start_gateway.sh", str(gateway_port), key],
            cwd=ROOT,
            env=gateway_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(gateway_port)
        yield gateway, gateway_env
    finally:
        for process in (gateway, engine):
            process.send_signal(signal.SIGINT)
        for process in (gateway, engine):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the gateway on port {port} was not ready after {timeout:g} s")
