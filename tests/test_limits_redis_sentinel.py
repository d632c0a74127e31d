"""Sentinel URLs (llm_gateway.limits.redis_sentinel)."""

from __future__ import annotations

import pytest

from llm_gateway.limits.redis_client import RedisConnection
from llm_gateway.limits.redis_cluster import ClusterConnection
from llm_gateway.limits.redis_nodes import connection_for
from llm_gateway.limits.redis_sentinel import SentinelConnection, parse_sentinel_url


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database():
    assert parse_sentinel_url("redis+sentinel://s1:26379,s2:26380/mymaster/2") == (
        [("s1", 26379), ("s2", 26380)],
        "mymaster",
        2,
    )
    assert parse_sentinel_url("redis+sentinel://:secret@s1,[::1]:5/cache") == (
        [("s1", 26379), ("::1", 5)],
        "cache",
        0,
    )


@pytest.mark.parametrize("url", ["redis+sentinel://s1:26379/", "redis+sentinel:///mymaster"])
def test_a_sentinel_url_without_its_master_or_sentinels_is_refused(url):
    with pytest.raises(ValueError, match="names its sentinels and its master"):
        parse_sentinel_url(url)


def test_the_url_picks_the_connection_and_the_master_s_password_is_kept():
    assert type(connection_for("redis://127.0.0.1:6379/0", 1.0, ())) is RedisConnection
    through = connection_for("redis+sentinel://:pw@s1:26379/mymaster/3", 1.0, ())
    assert isinstance(through, SentinelConnection)
    assert (through.service, through.db, through.password) == ("mymaster", 3, "pw")
    assert through.sentinels == [("s1", 26379)]
    assert isinstance(connection_for("redis://n1:7000", 1.0, (), cluster=True), ClusterConnection)
