"""One background loop per owner and event loop: started again on a new loop (a test's, or
after a loop change), in a context of its own (not that of the request that happened to
start it, whose id its log lines would carry), and cancelled and awaited at close."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any


class Background:
    __slots__ = ("_run", "task")

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._run = run
        self.task: asyncio.Task[None] | None = None

    def running(self) -> bool:
        """Running on the current event loop."""
        task = self.task
        return (
            task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop()
        )

    def start(self) -> None:
        """Start it on the running loop (a new task, even if one ran on another loop)."""
        self.task = asyncio.get_running_loop().create_task(
            self._run(), context=contextvars.Context()
        )

    async def aclose(self) -> None:
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
