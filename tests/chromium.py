"""A real headless Chromium, driven through the DevTools protocol, for testing report.html.

Why a real browser: the page's numbers come from its script; only a browser running it can say
whether the slider recomputes what Python computes. Debian's `chromium` package is enough: it is
started with `--remote-debugging-port=0` (it writes the port it chose to `DevToolsActivePort` in
its profile folder) and spoken to over a websocket with aiohttp. No browser download.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

BINARIES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of an installed Chromium, or None."""
    return next((p for p in map(shutil.which, BINARIES) if p), None)


class Page:
    """One open page: evaluate JavaScript in it and get the JSON value back."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ws: Any) -> None:
        self._loop, self._ws, self._id = loop, ws, 0

    async def _call(self, method: str, **params: Any) -> dict:
        self._id += 1
        await self._ws.send_json({"id": self._id, "method": method, "params": params})
        while True:
            msg = await self._ws.receive_json(timeout=30)
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def evaluate(self, expression: str) -> Any:
        """The value of `expression` (awaited if a promise); a thrown exception raises here."""
        res = self._loop.run_until_complete(
            self._call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True))
        if "exceptionDetails" in res:
            raise RuntimeError(f"page error: {res['exceptionDetails'].get('exception', res['exceptionDetails'])}")
        return res["result"].get("value")

    def errors(self) -> list[str]:
        """Uncaught errors the page reported since it loaded (see `Browser.open`)."""
        return self.evaluate("window.__errors")


class Browser:
    """`with Browser() as b: page = b.open(path)`; the browser and its profile go away on exit."""

    def __init__(self, binary: str | None = None, width: int = 1400, height: int = 1000) -> None:
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise FileNotFoundError("no chromium installed (apt-get install -y chromium)")
        self.size = f"{width},{height}"

    def __enter__(self) -> Browser:
        import aiohttp

        self._profile = tempfile.TemporaryDirectory(prefix="ddray-chromium-")
        self._proc = subprocess.Popen(
            [self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={self._profile.name}", f"--window-size={self.size}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"{self.binary} did not open its DevTools port")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        self._loop = asyncio.new_event_loop()
        self._http = self._loop.run_until_complete(self._session(aiohttp))
        self._sockets: list[Any] = []
        return self

    async def _session(self, aiohttp: Any) -> Any:
        return aiohttp.ClientSession()

    def open(self, path: Path, scripts: bool = True) -> Page:
        """Load `path` in a new tab (with JavaScript off when not `scripts`), wait until it has loaded."""
        target = self._loop.run_until_complete(self._put(f"http://127.0.0.1:{self.port}/json/new?about:blank"))
        ws = self._loop.run_until_complete(self._http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0))
        self._sockets.append(ws)
        page = Page(self._loop, ws)
        # Collect uncaught errors from the first script on, so a test can assert there were none.
        self._loop.run_until_complete(page._call("Page.enable"))
        self._loop.run_until_complete(page._call(
            "Page.addScriptToEvaluateOnNewDocument",
            source="window.__errors=[];addEventListener('error',e=>__errors.push(String(e.message)));"))
        if not scripts:  # as a reader with JavaScript disabled sees it; DevTools' own evaluate still runs
            self._loop.run_until_complete(page._call("Emulation.setScriptExecutionDisabled", value=True))
        self._loop.run_until_complete(page._call("Page.navigate", url=Path(path).resolve().as_uri()))
        deadline = time.monotonic() + 30
        while page.evaluate("document.readyState") != "complete" or page.evaluate("location.protocol") != "file:":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} did not load")
            time.sleep(0.05)
        return page

    async def _put(self, url: str) -> Any:
        async with self._http.put(url) as r:
            return json.loads(await r.text())

    def __exit__(self, *exc: object) -> None:
        if getattr(self, "_http", None) is not None:
            for ws in self._sockets:
                self._loop.run_until_complete(ws.close())
            self._loop.run_until_complete(self._http.close())
            self._loop.close()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._profile.cleanup()
