"""The limits' Redis as a Redis Cluster (``LLM_GATEWAY_REDIS_CLUSTER=true``; ``REDIS_URL``
names any one node): a pipelined ``RedisConnection`` per master, each script sent to the
master of its first key's slot.

The slot map comes from ``CLUSTER SLOTS``, read when the first command goes out and again
after a redirect or a failure. ``MOVED`` (the slot has moved for good) updates the map and
sends the command again there; ``ASK`` (a slot being migrated) sends it once to the named
node after ``ASKING``. Both mean the command did not run, so sending it again counts nothing
twice; a command that failed any other way is never sent again (the limits' fail-open or
fail-closed decides). A master that dies fails its commands until the cluster promotes its
replica and a fresh map names it.

Why not redis-py's ``RedisCluster``: measured by ``bench/limits_cost.py --cluster`` (three
masters, one run), its asyncio client spends 48-59 us of CPU on one ``EVALSHA``, where a whole
admission and settle through this connection costs 38-49 us (the same key on one server:
35-47 us). The slot of a key is redis-py's own ``key_slot``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from .redis_client import Redirected, RedisConnection, RedisUnavailable, Script, pack

logger = logging.getLogger(__name__)
Address = tuple[str, int]


class ClusterConnection:
    def __init__(self, url: str, timeout: float = 1.0, scripts: tuple[Script, ...] = ()) -> None:
        parts = urlsplit(url)
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError("a Redis Cluster has database 0 only")
        self._url, self.timeout, self.scripts = parts, timeout, scripts
        seed = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.seeds: list[Address] = [seed]
        self.slots: list[Address | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        self.nodes: dict[Address, RedisConnection] = {}
        self._refreshing: asyncio.Task[None] | None = None

    def at(self, address: Address) -> RedisConnection:
        connection = self.nodes.get(address)
        if connection is None:
            host, port = address
            netloc = self._url.netloc.rpartition("@")[0]
            netloc = f"{netloc}@{host}:{port}" if netloc else f"{host}:{port}"
            url = urlunsplit((self._url.scheme, netloc, "/0", "", ""))
            connection = self.nodes[address] = RedisConnection(url, self.timeout, self.scripts)
        return connection

    def node(self, key: str) -> RedisConnection:
        return self.serving(key_slot(key.encode()))

    def serving(self, slot: int) -> RedisConnection:
        """The connection to the master of ``slot`` as the map says."""
        address = self.slots[slot]
        if address is None:  # no map yet: any node answers, or redirects
            self.refresh_soon()
            address = self.seeds[0]
        return self.at(address)

    async def evalsha(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        connection = self.node(keys[0])
        for _ in range(5):  # a slot redirected more often than that is a cluster in turmoil
            try:
                return await connection.evalsha(script, keys, args)
            except Redirected as redirect:
                connection = self.at(redirect.address)
                if redirect.ask:
                    await self._asking(connection)
                else:
                    self.slots[redirect.slot] = redirect.address
                    self.refresh_soon()
            except RedisUnavailable:
                self.refresh_soon()  # a failover changes the map
                raise
        raise RedisUnavailable("Redis Cluster kept redirecting the command")

    async def _asking(self, connection: RedisConnection) -> None:
        """``ASKING`` right before the command, in the same write: nothing comes between."""
        if connection.send_nowait(pack(b"ASKING")) is None:  # not connected yet
            await connection.call(b"PING")
            connection.send_nowait(pack(b"ASKING"))

    async def call(self, *args: bytes | str | int | float) -> Any:
        """A command for no key (``PING``), to any node."""
        return await self.at(self.seeds[0]).call(*args)

    def refresh_soon(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self.refresh())

    async def refresh(self) -> None:
        """The slot map from the first node that answers ``CLUSTER SLOTS``."""
        for address in [*self.seeds, *(a for a in self.nodes if a not in self.seeds)]:
            try:
                reply = await self.at(address).call(b"CLUSTER", b"SLOTS")
            except RedisUnavailable:
                continue
            slots: list[Address | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
            masters = set()
            for start, end, master, *_ in reply:
                host = master[0].decode() or address[0]
                served = (host, int(master[1]))
                masters.add(served)
                slots[start : end + 1] = [served] * (end + 1 - start)
            self.slots = slots
            self.seeds = [address, *sorted(masters - {address})]
            for gone in [a for a in self.nodes if a not in masters and a not in self.seeds]:
                self.nodes.pop(gone).close()
            return
        logger.warning("Redis Cluster: no node answered CLUSTER SLOTS")

    def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        for connection in self.nodes.values():
            connection.close()
        self.nodes.clear()
