"""The CPU cost of a feature, on against off, in alternating rounds:
    .venv/bin/python bench/feature_cost.py --feature usage [--rounds 5] [--seconds 5]
        [--loads requests:16,streams:32]

Features: ``logging`` (response logging), ``usage`` (usage accounting and the request log,
or apart: ``usage-counting``, ``request-log``), ``metrics`` (the Prometheus observer),
``limits`` (a key with every limit set against one with none; with ``REDIS_URL`` set, the
limits are in that Redis), ``routing`` (three replicas, three fake engines, against one),
``validation`` (the request checks of ``core/validate.py`` against the table emptied),
``money`` (a price book entry for the model and money budgets on the key, its owner and its
team, against none: pricing every request and the budgets' reservations), ``scheduler`` (the
gateway queue on, unsaturated, against off), ``tracing`` (OpenTelemetry spans and GenAI
metrics exported over OTLP/HTTP to a receiver process that reads and discards them, against
``LLM_GATEWAY_OTEL=off``; ``tracing-spans``: the spans alone; ``tracing-sampled``: the
spans alone, one trace in ten sampled), ``tracing-off``
(``LLM_GATEWAY_OTEL=off`` with an endpoint set, against no OpenTelemetry variable at all),
``control`` (the
same gateway on both sides: the ratio the comparison shows for nothing, its bias and noise).
bench/run.sh measures each target once, one after the other, so machine noise between two
targets (seen up to 10% on two processes running the same code) lands in the on/off ratio.
Here two gateways (the feature off, on) run side by side (on SQLite files of their own, or
on the database of DATABASE_URL) in front of the harness's fake
engine, and the same load goes to each in turn, round after round; the ratio of each round
and their median are printed. Loads: ``requests:C`` (wrk, C connections, plain chat
completions) and ``streams:C`` (64-event streams, C at once). Needs ../shared/bench set up
(bench/run.sh says how).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_BENCH", ROOT.parent / "shared" / "bench"))
BENCH_PYTHON = os.environ.get("BENCH_PYTHON", "/tmp/bench-venv/bin/python")
KEY = "sk-00000000-benchbenchbenchbenchbenchbenchbenchbenchben"
UPSTREAM_PORT, OFF_PORT, ON_PORT = 9110, 8021, 8022
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {KEY}"})
            with urllib.request.urlopen(request, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


FEATURES = {  # feature: the settings that turn it on (off: each one "false")
    "logging": ("LLM_GATEWAY_LOG_RESPONSES",),
    "usage": ("LLM_GATEWAY_USAGE", "LLM_GATEWAY_REQUEST_LOG"),
    "usage-counting": ("LLM_GATEWAY_USAGE",),  # the two parts of "usage" apart
    "request-log": ("LLM_GATEWAY_REQUEST_LOG",),
    "metrics": ("LLM_GATEWAY_METRICS",),
    # A key with every limit against a key with none (in Redis when REDIS_URL is set).
    "limits": ("BENCH_KEY_LIMITS",),
    # Three replicas (three fake engines, least_outstanding) against one.
    "routing": (),
    # core/validate.py's checks against the same gateway with its table emptied.
    "validation": (),
    # Prices and money budgets at three levels against none (in Redis when REDIS_URL is set).
    "money": ("BENCH_MONEY",),
    # The gateway queue and the engines' /metrics reads, unsaturated (the fake engine has no
    # /metrics: each replica judged by max_in_flight, here none) against the scheduler off.
    "scheduler": ("LLM_GATEWAY_SCHEDULER",),
    # OpenTelemetry: spans and metrics to the receiver (on) against LLM_GATEWAY_OTEL=off.
    "tracing": (),
    "tracing-spans": (),  # the spans alone (a traces endpoint, no metrics endpoint)
    "tracing-sampled": (),  # the spans alone, one trace in ten sampled
    # LLM_GATEWAY_OTEL=off with an endpoint (on) against no OTEL_* variable (off).
    "tracing-off": (),
    # The same gateway on both sides: what the comparison itself shows (bias, noise).
    "control": (),
}
RECEIVER_PORT = 9120
RECEIVER = f"http://127.0.0.1:{RECEIVER_PORT}"
REPLICA_PORTS = (9111, 9112, 9113)


def start_gateway(port: int, feature: str, on: bool, workdir: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        FAKE_UPSTREAM_URL=f"http://127.0.0.1:{UPSTREAM_PORT}/v1",
        BENCH_VAR=str(workdir / f"gateway-{port}"),
        **dict.fromkeys(FEATURES[feature], "true" if on else "false"),
    )
    if feature == "routing" and on:
        replicas = [{"url": f"http://127.0.0.1:{p}/v1", "name": f"r{p}"} for p in REPLICA_PORTS]
        env["LLM_GATEWAY_UPSTREAMS"] = json.dumps(replicas)
    if feature == "tracing":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = RECEIVER
        env["LLM_GATEWAY_OTEL"] = "auto" if on else "off"
    if feature == "tracing-sampled":
        env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        env["OTEL_TRACES_SAMPLER_ARG"] = "0.1"
    if feature in ("tracing-spans", "tracing-sampled"):
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = RECEIVER + "/v1/traces"
        env["LLM_GATEWAY_OTEL"] = "auto" if on else "off"
    if feature == "tracing-off" and on:
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=RECEIVER, LLM_GATEWAY_OTEL="off")
    if feature == "validation" and not on:
        env["GATEWAY_APP"] = "bench.asgi_without_validation:application"
    out = open(workdir / f"gateway-{port}.log", "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        ["bash", "bench/start_gateway.sh", str(port), KEY],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def load(port: int, kind: str, concurrency: int, seconds: float) -> int:
    """Requests (or streams) completed."""
    if kind == "requests":
        return load_requests(port, concurrency, seconds)
    result = subprocess.run(
        [
            BENCH_PYTHON,
            str(SHARED / "stream_client.py"),
            "-c",
            str(concurrency),
            "-d",
            str(seconds),
            "-H",
            f"Authorization: Bearer {KEY}",
            f"http://127.0.0.1:{port}/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("STREAMJSON "))
    summary = json.loads(line.split(" ", 1)[1])
    if summary["errors"]:
        raise RuntimeError(f"stream errors: {summary['err_kinds']}")
    return int(summary["streams"])


def load_requests(port: int, concurrency: int, seconds: float) -> int:
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s"]
    command += ["-s", str(SHARED / "wrk_post.lua"), "-H", f"Authorization: Bearer {KEY}"]
    command.append(f"http://127.0.0.1:{port}/v1/chat/completions")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("WRKJSON "))
    summary = json.loads(line.split(" ", 1)[1])
    errors = sum(v for k, v in summary.items() if k.startswith("err_"))
    if errors:
        raise RuntimeError(f"request errors: {summary}")
    return int(summary["requests"])


def measure(pid: int, port: int, kind: str, concurrency: int, seconds: float) -> float:
    """CPU milliseconds per request (or stream)."""
    before = cpu_seconds(pid)
    done = load(port, kind, concurrency, seconds)
    return 1000 * (cpu_seconds(pid) - before) / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--feature", choices=sorted(FEATURES), default="logging")
    parser.add_argument("--loads", default="streams:1,streams:32")
    args = parser.parse_args()
    workdir = Path(f"/tmp/llm-gateway-feature-cost-{args.feature}")
    workdir.mkdir(exist_ok=True)
    ports = [UPSTREAM_PORT, *(REPLICA_PORTS if args.feature == "routing" else ())]
    upstreams = [
        subprocess.Popen(
            [BENCH_PYTHON, str(SHARED / "fake_upstream.py"), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    if args.feature.startswith("tracing"):  # the collector: reads each export, keeps nothing
        receiver = [sys.executable, "tests/otlp_receiver.py", "--port", str(RECEIVER_PORT)]
        upstreams.append(
            subprocess.Popen(
                [*receiver, "--discard"],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    gateways: dict[bool, subprocess.Popen[bytes]] = {}
    try:
        # One after the other: with a shared DATABASE_URL, both set up the same database.
        for on, port in ((False, OFF_PORT), (True, ON_PORT)):
            gateways[on] = start_gateway(port, args.feature, on, workdir)
            wait_ready(f"http://127.0.0.1:{port}/v1/models")
        for spec in args.loads.split(","):
            kind, concurrency = spec.split(":")[0], int(spec.split(":")[1])
            load(OFF_PORT, kind, concurrency, 1)  # warm-up
            load(ON_PORT, kind, concurrency, 1)
            ratios = []
            unit = "request" if kind == "requests" else "stream"
            for round_ in range(1, args.rounds + 1):
                off = measure(gateways[False].pid, OFF_PORT, kind, concurrency, args.seconds)
                on = measure(gateways[True].pid, ON_PORT, kind, concurrency, args.seconds)
                ratios.append(on / off)
                print(
                    f"{args.feature} {kind} c={concurrency} round {round_}: off {off:.3f} "
                    f"on {on:.3f} CPU-ms/{unit}, on/off x{on / off:.3f}",
                    flush=True,
                )
            print(
                f"{args.feature} {kind} c={concurrency}: median on/off "
                f"x{statistics.median(ratios):.3f} (min x{min(ratios):.3f}, "
                f"max x{max(ratios):.3f})",
                flush=True,
            )
    finally:
        for process in [*gateways.values(), *upstreams]:
            process.send_signal(signal.SIGINT)
        for process in [*gateways.values(), *upstreams]:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
