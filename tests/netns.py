"""Several hosts on one machine, for tests of what crosses a network: a bridge here and
network namespaces of their own, each with an address on it, as `ip netns` and veth give.
Services on this machine are reached from the hosts at the bridge's address (``gateway_ip``);
``Forward`` carries one of them (PostgreSQL, listening on 127.0.0.1 only) there."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "no `ip` command (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"llmgw-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Network:
    """A /24 on a bridge: this machine is .1, the hosts .2, .3, ..."""

    def __init__(self, hosts: int) -> None:
        tag = f"{os.getpid() % 10000}"
        self.bridge = f"llmgw{tag}"
        self.subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
        self.gateway_ip = f"{self.subnet}.1"
        self.hosts = [f"llmgw{tag}h{i}" for i in range(hosts)]
        self.addresses = [f"{self.subnet}.{i + 2}" for i in range(hosts)]

    def __enter__(self) -> Network:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway_ip}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for index, (host, address) in enumerate(zip(self.hosts, self.addresses, strict=True)):
                outside, inside = f"{self.bridge}v{index}", f"{self.bridge}i{index}"
                _ip("netns", "add", host)
                _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
                _ip("link", "set", outside, "master", self.bridge, "up")
                _ip("link", "set", inside, "netns", host)
                _ip("-n", host, "addr", "add", f"{address}/24", "dev", inside)
                _ip("-n", host, "link", "set", inside, "up")
                _ip("-n", host, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for host in self.hosts:
            subprocess.run(["ip", "netns", "del", host], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)


class Forward:
    """Listens on (host, port) and relays each connection to (to_host, to_port)."""

    def __init__(self, host: str, port: int, to_host: str, to_port: int) -> None:
        self.listen, self.target = (host, port), (to_host, to_port)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> Forward:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(self._relay, *self.listen))
        self._ready.set()
        loop.run_forever()
        server.close()
        for writer in self._writers:
            writer.transport.abort()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(server.wait_closed())
        loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
