"""Run daphne on uvloop, optionally as N processes on one port.

    python -m llm_gateway.run [--workers N] [daphne options] project.asgi:application

Exactly daphne's command line, with these additions:

- daphne's Twisted asyncio reactor runs on a uvloop event loop when uvloop is installed:
  measured 26% more requests/s and 20% less CPU per request (docs/performance.md). daphne
  builds its loop when ``daphne.server`` is imported, so the policy is set before that import.
  ``LLM_GATEWAY_UVLOOP=false`` keeps asyncio's own loop. A socket error leaves uvloop with a
  closed handle that Twisted then fails on: ``server.patches.uvloop_poll_errors`` clears it.
- An IPv4 ``-b``/``-p`` address is bound here, with a listen backlog of 2048, and handed to
  daphne as ``--fd``: Twisted's own backlog is 50, so a burst of new connections (a thousand
  clients opening streams at once) had SYNs dropped and retried a second or more later.
  An IPv6 address is left to daphne (see ``is_ipv6``).
- ``--workers N`` (IPv4 only, N > 1) starts N daphne processes that all accept on that one
  socket, so a gateway can use more than one core without a front proxy. SIGINT/SIGTERM go to
  every worker; if one exits, all stop.
- A SIGTERM that comes while the process starts is kept, and drains once it runs. With
  workers, the parent forwards each signal and waits for them all, killing any that outlives
  the drain time plus a margin: no worker is ever left behind.

Everything else (the drain, backpressure, the reaper fix, close codes, tuning) comes with
``llm_gateway.server.apply()``, which every daphne process runs, the plain CLI's included.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from ..conf import Settings
from . import PatchRefused, apply, process_drain

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
KILL_MARGIN_SECONDS = 10.0


def environment_settings() -> Settings:
    """The settings as the launcher reads them: from the environment (it starts before
    Django's settings exist); a value ``conf`` cannot read stops the start-up."""
    return Settings(environ=os.environ)


def use_uvloop() -> bool:
    if not _read(environment_settings(), "UVLOOP"):
        return False
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _take_option(argv: list[str], *names: str) -> str | None:
    """Remove ``NAME VALUE`` or ``NAME=VALUE`` from argv; return the value."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
                del argv[i : i + 2]
                return value
            if arg.startswith(name + "="):
                del argv[i]
                return arg.split("=", 1)[1]
    return None


def bind_socket(host: str, port: int) -> socket.socket:
    """An IPv4 listening socket for daphne's ``--fd`` (IPv6 hosts: see ``is_ipv6``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def is_ipv6(host: str) -> bool:
    """daphne adopts a bound socket as IPv4 only (its ``fd:`` endpoint cannot say the family,
    and IPv6 peers then come out as garbled addresses), so IPv6 hosts are bound by daphne."""
    return ":" in host


def run_workers(workers: int, argv: list[str]) -> int:
    """Bind once, start the workers with --fd, supervise them; returns an exit code."""
    argv = list(argv)
    host = _take_option(argv, "-b", "--bind") or "127.0.0.1"
    port = int(_take_option(argv, "-p", "--port") or "8000")
    if is_ipv6(host):
        raise SystemExit("--workers needs an IPv4 address to bind (-b); see llm_gateway.run")
    sock = bind_socket(host, port)
    command = [sys.executable, "-m", "llm_gateway.run", "--fd", str(sock.fileno()), *argv]
    # One scrape of any worker reports them all: prometheus_client's multiprocess mode keeps
    # every worker's values in files here (made fresh, removed when the workers are gone).
    own_dir = METRICS_DIR not in os.environ
    metrics_dir = os.environ.get(METRICS_DIR) or tempfile.mkdtemp(prefix="llm-gateway-metrics-")
    env = {**os.environ, METRICS_DIR: metrics_dir}
    children = [
        subprocess.Popen(command, pass_fds=[sock.fileno()], env=env) for _ in range(workers)
    ]
    sock.close()  # the workers hold it now
    try:
        return _supervise(children)
    finally:
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def drain_seconds() -> float:
    """``LLM_GATEWAY_DRAIN_SECONDS`` as the parent reads it (it has no Django settings)."""
    return float(_read(environment_settings(), "DRAIN_SECONDS"))


def _read(settings: Settings, name: str) -> Any:
    try:
        return getattr(settings, name)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"llm_gateway: not starting: LLM_GATEWAY_{name}: {exc}") from None


def _supervise(children: list[subprocess.Popen[bytes]]) -> int:
    """Forward SIGINT/SIGTERM to every worker; if one ends by itself, stop the others. Once
    stopping, wait for all of them, and kill any still running after the drain's time."""
    deadline: float | None = None

    def forward(signum: int, _frame: object) -> None:
        nonlocal deadline
        if deadline is None:
            deadline = time.monotonic() + drain_seconds() + KILL_MARGIN_SECONDS
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)  # a second one makes them skip the wait

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    while all(child.poll() is None for child in children):
        time.sleep(0.1)
    if deadline is None:
        # A worker ended by itself: stop the others (they drain, as on SIGTERM).
        deadline = time.monotonic() + drain_seconds() + KILL_MARGIN_SECONDS
        for child in children:
            if child.poll() is None:
                child.terminate()
    while any(child.poll() is None for child in children):
        if time.monotonic() > deadline:
            for child in children:
                if child.poll() is None:
                    child.kill()  # past the drain time and its margin: never an orphan
        time.sleep(0.1)
    codes = [child.wait() for child in children]
    return next((code for code in codes if code), 0)


def refuse_to_start_misconfigured(args: list[str]) -> None:
    """Import the application as daphne will (which sets Django up), then run the gateway's
    checks: an error ends the start-up here, with the check's message and exit status 1."""
    from daphne.cli import CommandLineInterface

    try:
        application = CommandLineInterface().parser.parse_args(args).application
    except SystemExit:
        return  # daphne will say what is wrong with its arguments
    from daphne.utils import import_by_path
    from django.core.exceptions import ImproperlyConfigured

    try:
        import_by_path(application)
        from ..checks import refuse_bad_settings

        refuse_bad_settings()
    except ImproperlyConfigured as exc:
        raise SystemExit(f"llm_gateway: not starting, the settings have errors:\n{exc}") from None
    except PatchRefused as exc:
        raise SystemExit(str(exc)) from None


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    workers = int(_take_option(args, "--workers") or "1")
    if workers > 1:
        sys.exit(run_workers(workers, args))
    if "daphne.server" in sys.modules:
        raise RuntimeError("llm_gateway.run must set the event loop before daphne is imported")
    drain = process_drain()
    drain.hold_signals()
    use_uvloop()
    from daphne.cli import CommandLineInterface

    try:
        apply(launcher=True)
    except PatchRefused as exc:
        raise SystemExit(str(exc)) from None
    refuse_to_start_misconfigured(args)  # before the port is bound: nothing listens then
    host = _take_option(list(args), "-b", "--bind") or "127.0.0.1"  # a look, args unchanged
    # Twisted adopts a --fd socket and closes that descriptor: daphne gets a duplicate, so
    # the launcher's own stays valid for the drain to close (with Twisted's copy, that closes
    # the listening socket). A worker's inherited descriptor is Twisted's alone.
    sockets: list[socket.socket] = []
    if "--fd" not in args and {"-p", "--port"} & set(args) and not is_ipv6(host):
        host = _take_option(args, "-b", "--bind") or "127.0.0.1"
        port = int(_take_option(args, "-p", "--port") or "8000")
        listening = bind_socket(host, port)
        sockets.append(listening)
        adopted = os.dup(listening.fileno())
        args[:0] = ["--fd", str(adopted)]
    drain.adopt(sockets)
    CommandLineInterface().run(args)
