"""One replica's client sessions: built from its options, never leaked across loops."""

from __future__ import annotations

import asyncio

from llm_gateway.upstream import Upstream, UpstreamOptions


def test_the_options_shape_the_session_and_a_replica_s_own_timeouts_win():
    options = UpstreamOptions(pool_size=3, read_timeout=7, connect_timeout=2)
    upstream = Upstream("http://127.0.0.1:9/v1", "sk-x", connect_timeout=0.5, options=options)

    async def main() -> None:
        session = upstream.session()
        assert upstream.session() is session
        assert session.connector is not None and session.connector.limit == 3
        assert session.timeout.sock_read == 7 and session.timeout.sock_connect == 0.5
        await upstream.aclose()
        assert session.closed

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
