"""Start real server processes for the end-to-end tests: daphne and the fake engine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], timeout: float = 30.0, host: str = "127.0.0.1"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


class Server:
    """A child process listening on host:port; its output goes to a log file."""

    def __init__(
        self,
        argv: list[str],
        port: int,
        env: Mapping[str, str],
        log: Path,
        api_path: str = "/v1",
        host: str = "127.0.0.1",
    ) -> None:
        self.argv, self.port, self.log_path, self.host = argv, port, log, host
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.api_path = api_path  # where the OpenAI API is: /v1, or /llm/v1 (the Django face)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api(self) -> str:
        """The OpenAI base URL (what the openai client takes as base_url)."""
        return self.url + self.api_path

    def start(self) -> Server:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.port, self.process, host=self.host)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def fake_upstream(
    tmp: Path,
    port: int | None = None,
    *,
    health: bool = True,
    host: str = "127.0.0.1",
    models: str | None = None,
    tokenizer: str | None = None,
    models_delay_ms: float = 0,
    owned_by: str | None = None,
) -> Server:
    port = port or free_port()
    argv = [sys.executable, str(ROOT / "tests" / "fake_upstream.py"), "--port", str(port)]
    if owned_by is not None:
        argv += ["--owned-by", owned_by]
    if models_delay_ms:
        argv += ["--models-delay-ms", str(models_delay_ms)]
    if tokenizer is not None:
        argv += ["--tokenizer", tokenizer]
    argv += ["--host", host]
    if models is not None:
        argv += ["--models", models]
    if not health:
        argv.append("--no-health")
    return Server(argv, port, {}, tmp / f"fake-upstream-{port}.log", host=host)


def redis_server(tmp: Path, port: int | None = None, host: str = "127.0.0.1") -> Server:
    """A private redis-server (nothing kept on disk), for tests that stop and start it. Its
    directory is ``tmp``: a replica's full sync writes an RDB file there, and a server reads
    one at start, so none is shared with another test's server or left in the checkout."""
    port = port or free_port()
    argv = ["redis-server", "--port", str(port), "--bind", host, "--save", ""]
    argv += ["--appendonly", "no", "--protected-mode", "no", "--dir", str(tmp)]
    argv += ["--dbfilename", f"dump-{port}.rdb"]
    return Server(argv, port, {}, tmp / f"redis-{port}.log", host=host)


def redis_replica(tmp: Path, primary: Server) -> Server:
    """A private redis-server replicating ``primary``."""
    server = redis_server(tmp)
    server.argv += ["--replicaof", primary.host, str(primary.port)]
    return server


def redis_sentinel(tmp: Path, primary: Server, name: str = "mymaster", quorum: int = 2) -> Server:
    """A Sentinel watching ``primary``: down after 1 s, a failover within a few seconds."""
    port = free_port()
    config = tmp / f"sentinel-{port}.conf"  # Sentinel rewrites its file: one per sentinel
    config.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode no\n"
        f"sentinel monitor {name} {primary.host} {primary.port} {quorum}\n"
        f"sentinel down-after-milliseconds {name} 1000\n"
        f"sentinel failover-timeout {name} 4000\n"
        f"sentinel parallel-syncs {name} 1\n"
    )
    argv = ["redis-server", str(config), "--sentinel"]
    return Server(argv, port, {}, tmp / f"sentinel-{port}.log")


def local_engine(tmp: Path, port: int | None = None) -> Server:
    """llama.cpp's OpenAI server with SmolLM2-135M (manage.py run_local_engine)."""
    port = port or free_port()
    argv = [sys.executable, "manage.py", "run_local_engine", "--port", str(port)]
    return Server(
        argv, port, {"DJANGO_SETTINGS_MODULE": "project.settings"}, tmp / f"engine-{port}.log"
    )


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    """Until url answers 200 (a port that listens may still be loading its model)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


FACES = {
    # face: (ASGI application, settings, API path)
    "fast": ("project.asgi:application", "project.settings", "/v1"),
    "django": ("project.asgi_django:application", "project.settings_django", "/llm/v1"),
}


def daphne(
    tmp: Path,
    env: Mapping[str, str],
    port: int | None = None,
    face: str = "fast",
    *,
    host: str = "127.0.0.1",
    netns: str | None = None,
    launcher: bool = True,
    application: str | None = None,
) -> Server:
    """daphne serving the example project: the ASGI fast path, or the Django face alone;
    in the network namespace ``netns`` (another host: tests/netns.py) if given. ``launcher``:
    ``python -m llm_gateway.run`` (daphne on uvloop, as scripts/serve.sh runs it), else the
    plain ``daphne`` CLI, as a project that never heard of the launcher runs it."""
    port = port or free_port()
    default_application, settings, api_path = FACES[face]
    command = "llm_gateway.run" if launcher else "daphne"
    argv = [sys.executable, "-m", command, "-b", host, "-p", str(port)]
    argv.append(application or default_application)
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = {"DJANGO_SETTINGS_MODULE": settings, **env}
    log = tmp / f"daphne-{face}-{netns or 'local'}-{command}-{port}.log"
    return Server(argv, port, env, log, api_path, host=host)


def client(server: Server, **kwargs: object) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10, **kwargs)  # type: ignore[arg-type]


def otlp_receiver(tmp: Path, port: int | None = None) -> Server:
    """The OTLP/HTTP receiver (tests/otlp_receiver.py): what the gateway's exporters send."""
    port = port or free_port()
    argv = [sys.executable, str(ROOT / "tests" / "otlp_receiver.py"), "--port", str(port)]
    return Server(argv, port, {}, tmp / f"otlp-{port}.log")


def redis_cluster_node(tmp: Path) -> Server:
    """A private redis-server with cluster mode on (its node file in ``tmp``); a failover
    within about two seconds of a master's death."""
    server = redis_server(tmp)
    server.argv += ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"]
    server.argv += ["--cluster-config-file", str(tmp / f"nodes-{server.port}.conf")]
    # The bus port defaults to the port + 10000, past 65535 for most ports the system hands
    # out: a free port of its own.
    server.argv += ["--cluster-port", str(free_port())]
    return server
