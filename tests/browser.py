"""Headless Chromium driven over the DevTools protocol (CDP), for tests that need a real browser.

``Chromium`` starts ``chromium --headless=new`` with a profile folder of its
own, finds its DevTools port in the profile's ``DevToolsActivePort`` file and
talks to it over websockets (aiohttp). ``new_page()`` opens a tab in a
browser context of its own, with its own storage and cookies: another
visitor. The browser is stopped by its PID: SIGTERM, a deadline, SIGKILL.
No fixed sleeps: every wait is on a protocol event or a polled condition.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.workers import stop_process

CHROMIUM = os.environ.get("MOTWATCH_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


class DevToolsError(Exception):
    """The browser answered a DevTools command with an error, or a page script threw."""


class _Connection:
    """One DevTools websocket: commands answered by id, events handed to whoever waits for them."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.waiting: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    future = self.pending.pop(data["id"], None)
                    if future is not None and not future.done():
                        if "error" in data:
                            future.set_exception(DevToolsError(str(data["error"])))
                        else:
                            future.set_result(data.get("result", {}))
                    continue
                for entry in list(self.waiting):
                    method, future = entry
                    if method == data.get("method") and not future.done():
                        future.set_result(data.get("params", {}))
                        self.waiting.remove(entry)
        finally:
            for future in [*self.pending.values(), *(f for _, f in self.waiting)]:
                if not future.done():
                    future.set_exception(DevToolsError("the DevTools connection closed"))

    async def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """Send a command and return its result (DevToolsError on an error answer)."""
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        return await asyncio.wait_for(future, timeout)

    def expect(self, method: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the next event named ``method``; ask before the action that causes it."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting.append((method, future))
        return future

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


class Page:
    """One tab: navigate, click, evaluate script, capture the screen."""

    def __init__(self, browser: Chromium, target_id: str, context_id: str, conn: _Connection) -> None:
        self.browser = browser
        self.target_id = target_id
        self.context_id = context_id
        self.conn = conn

    @contextlib.asynccontextmanager
    async def navigation(self, timeout: float = 30) -> AsyncIterator[None]:
        """Around an action that loads another document: returns once its load event fired."""
        loaded = self.conn.expect("Page.loadEventFired")
        yield
        await asyncio.wait_for(loaded, timeout)

    async def goto(self, url: str, timeout: float = 30) -> None:
        """Load ``url`` and wait for its load event."""
        async with self.navigation(timeout):
            result = await self.conn.call("Page.navigate", url=url)
            if result.get("errorText"):
                raise DevToolsError(f"{url}: {result['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        """The value of a script expression in the page (promises awaited)."""
        result = await self.conn.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20, interval: float = 0.05) -> Any:
        """Polls ``expression`` until it is truthy; returns that value."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(DevToolsError):  # a document being replaced has no context
                value = await self.evaluate(expression)
                if value:
                    return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {expression}")
            await asyncio.sleep(interval)

    async def click(self, selector: str) -> None:
        """A left click with the mouse in the middle of the element, as a person clicks."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if box is None:
            raise DevToolsError(f"no element matches {selector}")
        x, y = box
        await self.conn.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            await self.conn.call(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", buttons=1, clickCount=1
            )

    async def screenshot(self, path: Path) -> bytes:
        """A PNG of the viewport, written to ``path``; returns its bytes."""
        result = await self.conn.call("Page.captureScreenshot", format="png")
        png = base64.b64decode(result["data"])
        path.write_bytes(png)
        return png

    async def close(self) -> None:
        await self.conn.close()
        await self.browser.call("Target.closeTarget", targetId=self.target_id)
        await self.browser.call("Target.disposeBrowserContext", browserContextId=self.context_id)


class Chromium:
    """Headless Chromium with a profile folder of its own under ``workdir``, stopped by its PID."""

    def __init__(self, workdir: Path, width: int = 1000, height: int = 760, binary: str = CHROMIUM) -> None:
        self.workdir = workdir
        self.profile = workdir / "chromium-profile"
        self.size = (width, height)
        self.binary = binary
        self.log_path = workdir / "chromium.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.session: aiohttp.ClientSession | None = None
        self.conn: _Connection | None = None

    async def start(self, timeout: float = 30) -> Chromium:
        """Launches the browser and connects to it; fails with its log if it does not come up."""
        self.profile.mkdir(parents=True, exist_ok=True)
        width, height = self.size
        argv = [
            self.binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-breakpad",
            f"--window-size={width},{height}",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            "about:blank",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (active.exists() and len(active.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log_text = self.log_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise AssertionError(f"chromium did not start (exit {self.proc.returncode}):\n{log_text}")
            await asyncio.sleep(0.05)
        port, path = active.read_text().splitlines()[:2]
        self.port = int(port)
        self.session = aiohttp.ClientSession()
        ws = await self.session.ws_connect(f"ws://127.0.0.1:{self.port}{path}", max_msg_size=0)
        self.conn = _Connection(ws)
        return self

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the browser itself (targets, contexts)."""
        assert self.conn is not None, "start() first"
        return await self.conn.call(method, **params)

    async def new_page(self) -> Page:
        """A tab in a browser context of its own (storage and cookies apart): a new visitor."""
        assert self.session is not None
        context = (await self.call("Target.createBrowserContext"))["browserContextId"]
        target = (await self.call("Target.createTarget", url="about:blank", browserContextId=context))[
            "targetId"
        ]
        ws = await self.session.ws_connect(
            f"ws://127.0.0.1:{self.port}/devtools/page/{target}", max_msg_size=0
        )
        page = Page(self, target, context, _Connection(ws))
        await page.conn.call("Page.enable")
        return page

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM to the browser's PID, then SIGKILL to its process group if it lingers."""
        if self.proc is None:
            return None
        stop_process(self.proc, timeout)
        # Helpers (renderers, zygotes) share the group the browser leads; none may outlive it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    async def close(self) -> None:
        """Closes the connection and stops the browser."""
        if self.conn is not None:
            await self.conn.close()
        if self.session is not None:
            await self.session.close()
        self.stop()

    async def __aenter__(self) -> Chromium:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
