"""One replica's client sessions: rebuilt when settings change, never leaked across loops."""

from __future__ import annotations

import asyncio

from django.test import override_settings

from llm_gateway.upstream.client import Upstream


def test_changed_pool_size_and_timeouts_give_a_new_session_and_shutdown_closes_both():
    upstream = Upstream("http://127.0.0.1:9/v1", "sk-x")

    async def main() -> None:
        first = upstream.session()
        assert upstream.session() is first
        with override_settings(LLM_GATEWAY_POOL_SIZE=3, LLM_GATEWAY_READ_TIMEOUT=7):
            second = upstream.session()
            assert second is not first and not first.closed  # requests may still run on it
            assert second.connector is not None and second.connector.limit == 3
            assert second.timeout.sock_read == 7
        await upstream.aclose()
        assert first.closed and second.closed

    asyncio.run(main())


def test_a_session_of_a_finished_event_loop_is_closed_and_not_reused():
    upstream = Upstream("http://127.0.0.1:9/v1")

    async def session():  # type: ignore[no-untyped-def]
        return upstream.session()

    first = asyncio.run(session())
    second = asyncio.run(session())
    assert second is not first and first.closed
    asyncio.run(upstream.aclose())
    assert second.closed


def test_credentials_are_built_in_one_place():
    assert Upstream("http://e/v1", "sk-up").auth_headers() == [("Authorization", "Bearer sk-up")]
    assert Upstream("http://e/v1").auth_headers() == []
    assert Upstream("http://e:8/v1/").origin == "http://e:8"
