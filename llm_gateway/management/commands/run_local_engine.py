from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from llm_gateway.local_engine import LocalEngineUnavailable, engine_argv, engine_environment


class Command(BaseCommand):
    help = (
        "Serve SmolLM2-135M-Instruct with llama.cpp's OpenAI-compatible server, in the "
        "foreground (Ctrl-C or SIGTERM stops it). Point LLM_GATEWAY_UPSTREAM_URL at "
        "http://HOST:PORT/v1."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        try:
            argv = engine_argv(host, port)
        except LocalEngineUnavailable as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(
            f"Serving {argv[argv.index('--model_alias') + 1]} on http://{host}:{port}/v1"
        )
        self.stderr.flush()
        # The engine replaces this process: its server (uvicorn) handles SIGINT and SIGTERM
        # itself and shuts down cleanly, and whoever started us can signal it by our PID.
        os.execve(argv[0], argv, engine_environment())
