"""How soon a change reaches every process, measured, where the tests only catch a hang:
    .venv/bin/python bench/propagation.py [--rounds 10] [--streams 8]

1. Revocation: two gateway processes on one database (as two hosts share PostgreSQL); a key
   is revoked with ``manage.py revoke_api_key`` while both answer it, and each is polled
   (every 5 ms) until it answers 401. Printed: the time from the command's return (its commit
   lies just before) to each process's first 401, against ``LLM_GATEWAY_KEY_CACHE_SECONDS``
   (the refresher's period).
2. Drain: a gateway with N paced streams open (20 chunks, 50 ms apart) gets SIGTERM; printed:
   how soon a new connection is refused, how soon after the last stream ended the process
   exited, and whether every stream ended whole.
Both use the test suite's fake engine (tests/fake_upstream.py) and bench/start_gateway.sh.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.local_gateway import ROOT, engine_and_gateway, wait_ready  # noqa: E402

KEY = "sk-00000000-benchbenchbenchbenchbenchbenchbenchbenchben"
ENGINE_PORT, FIRST_PORT, SECOND_PORT = 9130, 8031, 8032
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


def manage(env: dict[str, str], *argv: str) -> str:
    command = [str(ROOT / ".venv/bin/python"), "manage.py", *argv]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return result.stdout


def revocation(rounds: int) -> None:
    workdir = Path("/tmp/llm-gateway-propagation")
    with engine_and_gateway(workdir, ENGINE_PORT, FIRST_PORT, KEY) as (_, env):
        env = {**env, "LLM_GATEWAY_VAR_DIR": env["BENCH_VAR"]}
        with open(workdir / "second.log", "wb") as log:
            second = subprocess.Popen(
                ["bash", "bench/start_gateway.sh", str(SECOND_PORT), KEY],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_ready(SECOND_PORT)
            period = float(env.get("LLM_GATEWAY_KEY_CACHE_SECONDS", "0.5"))
            seen: list[float] = []
            for round_ in range(rounds):
                name = f"propagation-{os.getpid()}-{round_}"
                raw = manage(env, "create_api_key", name).strip().splitlines()[-1]
                clients = [
                    httpx.Client(
                        base_url=f"http://127.0.0.1:{port}/v1",
                        headers={"Authorization": f"Bearer {raw}"},
                    )
                    for port in (FIRST_PORT, SECOND_PORT)
                ]
                assert [c.get("/models").status_code for c in clients] == [200, 200]
                manage(env, "revoke_api_key", name)
                revoked = time.monotonic()
                until: dict[int, float] = {}
                while len(until) < 2 and time.monotonic() - revoked < 30:
                    for i, client in enumerate(clients):
                        if i not in until and client.get("/models").status_code == 401:
                            until[i] = time.monotonic() - revoked
                    time.sleep(0.005)
                for client in clients:
                    client.close()
                seen.extend(until.values())
                times = [f"process {i + 1} {s * 1000:.0f} ms" for i, s in sorted(until.items())]
                print(f"revocation round {round_ + 1}: " + ", ".join(times), flush=True)
            print(
                f"revocation: median {statistics.median(seen) * 1000:.0f} ms, max "
                f"{max(seen) * 1000:.0f} ms over {len(seen)} (process, round) pairs; "
                f"KEY_CACHE_SECONDS {period:g} s (the median over the period: "
                f"x{statistics.median(seen) / period:.2f})",
                flush=True,
            )
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(30)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
    except OSError:
        return True
    return False


def drain(streams: int) -> None:
    workdir = Path("/tmp/llm-gateway-propagation-drain")
    with engine_and_gateway(workdir, ENGINE_PORT, FIRST_PORT, KEY) as (gateway, _):
        ended: list[float] = []
        whole: list[bool] = []
        begun = threading.Barrier(streams + 1)

        def read() -> None:
            headers = {
                "Authorization": f"Bearer {KEY}",
                "X-Fake-Chunks": "20",
                "X-Fake-Delay-Ms": "50",
            }
            body = {**CHAT, "stream": True}
            url = f"http://127.0.0.1:{FIRST_PORT}/v1/chat/completions"
            with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
                lines = response.iter_lines()
                next(lines)
                begun.wait()
                rest = list(lines)
            whole.append(any(line == "data: [DONE]" for line in rest))
            ended.append(time.monotonic())

        threads = [threading.Thread(target=read) for _ in range(streams)]
        for thread in threads:
            thread.start()
        begun.wait()
        signalled = time.monotonic()
        gateway.send_signal(signal.SIGTERM)
        while not refused(FIRST_PORT) and time.monotonic() - signalled < 30:
            time.sleep(0.001)
        refused_after = time.monotonic() - signalled
        for thread in threads:
            thread.join()
        gateway.wait(60)
        exited = time.monotonic()
        print(
            f"drain: new connections refused {refused_after * 1000:.1f} ms after SIGTERM; "
            f"{sum(whole)}/{streams} streams ended whole, the last "
            f"{(max(ended) - signalled) * 1000:.0f} ms after SIGTERM; the process exited "
            f"{(exited - max(ended)) * 1000:.0f} ms after the last stream ended "
            f"(exit code {gateway.returncode})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--streams", type=int, default=8)
    args = parser.parse_args()
    revocation(args.rounds)
    drain(args.streams)


if __name__ == "__main__":
    main()
