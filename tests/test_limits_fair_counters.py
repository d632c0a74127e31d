"""The fair-share counters shared through Redis (``limits.fair_counters``): what one process
charges, another reads within a sync; a lift travels as the difference it made; with Redis
gone each process goes on alone and sends what it kept later. Against the machine's Redis
(REDIS_URL, .ci/run's second pass) and a private redis-server for the outage."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import uuid

import pytest

from llm_gateway.limits.fair_counters import SharedCounters

from . import servers


def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set: the shared counters run in .ci/run's second pass")
    return url


def test_what_one_process_charges_the_other_reads_after_a_sync():
    url, namespace = redis_url(), f"test-{uuid.uuid4().hex[:8]}"

    async def go():
        one, two = SharedCounters(url, namespace), SharedCounters(url, namespace)
        one.charge("owner:1", 100.0)
        two.charge("owner:2", 30.0)
        await one.sync()
        await two.sync()
        await one.sync()
        assert (one.value("owner:1"), one.value("owner:2")) == (100.0, 30.0)
        assert (two.value("owner:1"), two.value("owner:2")) == (100.0, 30.0)
        two.lift("owner:3", ["owner:1", "owner:2"])  # back from idle: to 30, the smallest
        await two.sync()
        await one.sync()
        assert one.value("owner:3") == 30.0
        await one.aclose()
        await two.aclose()

    asyncio.run(go())


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")
def test_with_redis_gone_each_counts_alone_and_sends_what_it_kept_later(tmp_path):
    server = servers.redis_server(tmp_path).start()
    url = f"redis://127.0.0.1:{server.port}/0"
    try:

        async def go():
            counters = SharedCounters(url, "t", timeout=0.3)
            counters.charge("owner:1", 5.0)
            await counters.sync()
            assert counters.shared and counters.value("owner:1") == 5.0
            server.process.send_signal(signal.SIGSTOP)  # unreachable: it answers nothing
            counters.charge("owner:1", 7.0)
            await counters.sync()
            assert not counters.shared
            assert counters.value("owner:1") == 12.0  # its own count goes on
            server.process.send_signal(signal.SIGCONT)
            await counters.sync()
            assert counters.shared and counters.value("owner:1") == 12.0
            other = SharedCounters(url, "t")
            await other.sync()
            assert other.value("owner:1") == 12.0  # nothing lost, nothing twice
            await counters.aclose()
            await other.aclose()

        asyncio.run(go())
    finally:
        server.stop()


def test_a_cancelled_sync_is_cancelled_even_while_connecting():
    """Cancelling the counters' loop while it connects ends it: a connection error made of
    the cancellation kept it running, and an event loop's close waited for it forever."""

    async def go():
        import socket

        with socket.socket() as listener:  # accepts the connection, never answers
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            counters = SharedCounters(f"redis://127.0.0.1:{port}/0", "t", timeout=30)
            counters.ensure_started()
            await asyncio.sleep(0.2)
            task = counters._loop.task
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=10)  # only a hang takes this long
            assert done and task.cancelled()
            counters.connection.close()

    loop = asyncio.new_event_loop()  # closed without waiting for its tasks: fails, never hangs
    try:
        loop.run_until_complete(go())
    finally:
        loop.close()
