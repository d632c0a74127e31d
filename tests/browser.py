"""Headless Chromium (Debian's package) driven over the DevTools protocol, for page checks.

Flags as this machine needs them (no sandbox as root, no background networking: the network
is closed). The protocol is spoken with aiohttp's WebSocket client, already a dependency.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from .servers import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
]


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await self.ws.send_json({"id": message_id, "method": method, "params": params})
        while True:
            message = json.loads((await self.ws.receive(timeout=30)).data)
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    async def goto(self, url: str) -> None:
        await self.mark()
        await self.call("Page.navigate", url=url)
        await self.new_document()

    async def mark(self) -> None:
        """Mark the document shown now, so that ``new_document`` knows it when it sees it."""
        await self.evaluate("window.__llm_gateway_seen = true")

    async def new_document(self, timeout: float = 30) -> None:
        """Until the document shown is another than the one marked, and fully loaded. A
        load event is no proof: one of the page before (the first about:blank's, or a page
        whose load was still under way) can arrive after the next navigation began."""
        deadline = time.monotonic() + timeout
        check = "window.__llm_gateway_seen !== true && document.readyState === 'complete'"
        while not await self.evaluate(check):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no new document within {timeout} s")
            await asyncio.sleep(0.05)

    async def settled_call(self, method: str, **params: Any) -> dict[str, Any]:
        """A call that a navigation just under way may refuse ("Not attached to an active
        page" while the new document takes over): asked again, for up to 5 s."""
        for _ in range(50):
            try:
                return await self.call(method, **params)
            except RuntimeError as exc:
                if not any(w in str(exc) for w in ("Not attached", "context", "navigated")):
                    raise
                await asyncio.sleep(0.1)
        return await self.call(method, **params)

    async def evaluate(self, expression: str) -> Any:
        result = await self.settled_call(
            "Runtime.evaluate", expression=expression, returnByValue=True
        )
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        shot = await self.settled_call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


async def _open(port: int) -> tuple[aiohttp.ClientSession, Page]:
    session = aiohttp.ClientSession()
    for _ in range(100):
        try:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = [t for t in await response.json() if t.get("type") == "page"]
            if targets:
                break
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    ws = await session.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0)
    page = Page(ws)
    await page.call("Page.enable")
    await page.call("Network.enable")
    return session, page


def run_in_browser(scenario: Any) -> Any:
    """Start Chromium, run ``await scenario(page)``, stop Chromium; the scenario's result."""
    assert CHROMIUM is not None
    port = free_port()
    profile = tempfile.mkdtemp(prefix="chromium-")
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--remote-debugging-port={port}", f"--user-data-dir={profile}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def main() -> Any:
        session, page = await _open(port)
        try:
            return await scenario(page)
        finally:
            await page.ws.close()
            await session.close()

    try:
        return asyncio.run(main())
    finally:
        process.terminate()
        process.wait(timeout=15)
        shutil.rmtree(profile, ignore_errors=True)


async def submit(page: Page, form: str, values: dict[str, str]) -> None:
    """Fill a form's fields by name, submit it as a person would (its submit button), and
    wait for the page that answers to have loaded: a check made before that would still
    read the form's page."""
    await page.mark()
    script = f"""(() => {{
        const form = document.querySelector({json.dumps(form)});
        for (const [name, value] of Object.entries({json.dumps(values)})) {{
            form.elements[name].value = value;
        }}
        form.querySelector('[type=submit]').click();
    }})()"""
    await page.evaluate(script)
    await page.new_document()


async def click(page: Page, selector: str) -> None:
    """Click what navigates (a link, a form's button) and wait for the page it leads to."""
    await page.mark()
    await page.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
    await page.new_document()
