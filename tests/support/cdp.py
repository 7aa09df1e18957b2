"""Drive a headless Chromium over the Chrome DevTools Protocol (websocket-client, no driver)."""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import requests
import websocket

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Known to work headless as root (CI): no sandbox, no GPU, nothing fetched from the network.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0", "--remote-allow-origins=*")


def find_browser() -> str | None:
    """TALLY_TEST_CHROMIUM, else the first Chromium or Chrome on PATH."""
    configured = os.environ.get("TALLY_TEST_CHROMIUM")
    if configured:
        return configured
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


class Browser:
    """One headless browser with one page; `evaluate` runs JavaScript in it."""

    def __init__(self, binary: str, timeout: float = 30.0):
        self.profile = tempfile.mkdtemp(prefix="tally-chromium-")
        self.log = open(Path(self.profile) / "browser.log", "wb")
        self.process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile}",
                                         "about:blank"], stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        port = self._devtools_port(timeout)
        page = self._first_page(port, timeout)
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout,
                                                  suppress_origin=True)
        self._ids = itertools.count(1)

    def _devtools_port(self, timeout: float) -> int:
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not marker.exists() or not marker.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the browser did not start: {self.output()[-2000:]}")
            time.sleep(0.1)
        return int(marker.read_text().split()[0])

    def _first_page(self, port: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return pages[0]
            if time.monotonic() > deadline:
                raise RuntimeError("the browser opened no page")
            time.sleep(0.1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one CDP command and return its result (events in between are skipped)."""
        ident = next(self._ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            return None
        return result["result"].get("value")

    def wait_for(self, expression: str, accept: Callable[[Any], bool], timeout: float,
                 what: str) -> Any:
        """Evaluate until `accept(value)`; fail naming `what` (and the last value) after timeout."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if accept(value):
                return value
            time.sleep(0.1)
        raise AssertionError(f"gave up waiting for {what}; last value {value!r}")

    def output(self) -> str:
        self.log.flush()
        return (Path(self.profile) / "browser.log").read_text(errors="replace")

    def close(self) -> None:
        try:
            self.socket.close()
        except Exception:  # the browser may already be gone
            pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
