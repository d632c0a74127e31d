"""The limits' Redis behind Sentinel: ``redis+sentinel://[user:pass@]host:26379,host2:26379/
mymaster/0`` names the sentinels, the monitored master's name and the database.

The master is found by redis-py's ``Sentinel`` (the well-kept implementation of the
protocol: it asks each sentinel in turn and skips a master a sentinel sees as down), only
when a connection opens, never per command; the commands then go through the pipelined
``RedisConnection`` (``redis_client`` says why not redis-py's client there). A failover ends
the old master's connections (Sentinel kills its clients) or makes it answer ``READONLY``
once demoted; either drops the socket, and the next command asks the sentinels again. A
command is never sent twice: one that may have run on the old master before it failed is
reported as failed (the limits' fail-open or fail-closed then decides), so nothing is counted
twice across a failover.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from .redis_client import RedisConnection, RedisUnavailable, Script

SCHEMES = ("redis+sentinel", "rediss+sentinel")


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int]:
    """The sentinels' addresses, the master's name and the database of a sentinel URL."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"not a redis+sentinel:// URL: {parts.scheme}://…")
    hosts = parts.netloc.rpartition("@")[2]
    sentinels = []
    for address in filter(None, hosts.split(",")):
        host, colon, port = address.rpartition(":")
        if not colon or not port.isdigit() or host.endswith(":"):  # no port (or bare IPv6)
            host, port = address, ""
        sentinels.append((host.strip("[]") or "127.0.0.1", int(port or 26379)))
    path = [part for part in parts.path.split("/") if part]
    if not sentinels or not path:
        raise ValueError("a sentinel URL names its sentinels and its master: host:26379/mymaster")
    return sentinels, path[0], int(path[1]) if len(path) > 1 else 0


class SentinelConnection(RedisConnection):
    """A ``RedisConnection`` to whichever server the sentinels call the master now."""

    def __init__(self, url: str, timeout: float = 1.0, scripts: tuple[Script, ...] = ()) -> None:
        sentinels, self.service, db = parse_sentinel_url(url)
        parts = urlsplit(url)
        plain = "rediss" if parts.scheme.startswith("rediss") else "redis"
        userinfo = parts.netloc.rpartition("@")[0]
        super().__init__(
            f"{plain}://{userinfo + '@' if userinfo else ''}127.0.0.1/{db}", timeout, scripts
        )
        self.sentinels = sentinels

    async def _open(self, loop: asyncio.AbstractEventLoop) -> Any:
        # The sentinels take no password here (Sentinel's own AUTH is rarely set; the URL's
        # password is the master's). Their connections last for this lookup only.
        sentinel = Sentinel(self.sentinels, socket_timeout=self.timeout)
        try:
            self.host, self.port = await asyncio.wait_for(
                sentinel.discover_master(self.service), self.timeout * len(self.sentinels)
            )
        except (RedisError, OSError, TimeoutError) as exc:
            raise RedisUnavailable(
                f"no sentinel named a master for {self.service!r}: {exc}"
            ) from exc
        finally:
            await asyncio.gather(*(client.aclose() for client in sentinel.sentinels))
        return await super()._open(loop)
