"""Headless Chromium driven over the DevTools protocol (a websocket): open a page at a viewport
size, record console errors and network requests, run a JavaScript probe, take screenshots.

Used by the report's browser tests; needs a `chromium` binary (Debian package `chromium`).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
START_TIMEOUT_S = 60  # a loaded CI machine starts Chromium slowly
LOAD_TIMEOUT_S = 60


def find_chromium() -> str | None:
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


@dataclass
class PageResult:
    probe: dict[str, Any]
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)


class Browser:
    """One headless Chromium process; `render` opens each page in a fresh tab."""

    def __init__(self, binary: str, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        port_file = profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)  # a reused profile holds the last process's port
        self.ws: websocket.WebSocket | None = None
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError(f"{binary} did not open its DevTools port")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        try:
            self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}",
                                                  timeout=LOAD_TIMEOUT_S, suppress_origin=True)
        except OSError:
            self.close()  # never leave a browser holding the profile behind
            raise
        self._id = 0

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    # -- protocol

    def _send(self, method: str, params: dict | None = None, session: str | None = None,
              events: list | None = None) -> dict[str, Any]:
        """Send a command and wait for its reply; events arriving meanwhile go to `events`."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if events is not None and "method" in reply:
                events.append(reply)

    def _wait_for(self, name: str, events: list) -> None:
        if any(e["method"] == name for e in events):
            return
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            e = json.loads(self.ws.recv())
            if "method" in e:
                events.append(e)
                if e["method"] == name:
                    return
        raise TimeoutError(name)

    # -- pages

    def render(self, url: str, width: int, height: int, probe_js: str,
               shots: Path | None = None) -> PageResult:
        """Load `url` at width x height, run `probe_js` (an async expression returning a JSON
        string) and screenshot the viewport and the full page into `shots` (a file stem)."""
        events: list[dict[str, Any]] = []
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self._send(f"{domain}.enable", session=session, events=events)
            self._send("Emulation.setDeviceMetricsOverride",
                       {"width": width, "height": height, "deviceScaleFactor": 1,
                        "mobile": width < 600}, session, events)
            events.clear()
            self._send("Page.navigate", {"url": url}, session, events)
            self._wait_for("Page.loadEventFired", events)
            value = self._send("Runtime.evaluate", {"expression": probe_js, "awaitPromise": True,
                                                    "returnByValue": True}, session, events)
            probe = json.loads(value["result"]["value"])
            result = PageResult(probe)
            if shots is not None:
                for suffix, params in (
                        ("viewport", {"format": "png"}),
                        ("page", {"format": "png", "captureBeyondViewport": True,
                                  "clip": {"x": 0, "y": 0, "width": width, "scale": 1,
                                           "height": min(probe["scrollHeight"], 16000)}})):
                    data = self._send("Page.captureScreenshot", params, session, events)["data"]
                    path = shots.with_name(f"{shots.name}-{suffix}.png")
                    path.write_bytes(base64.b64decode(data))
                    result.screenshots.append(path)
            self._collect(events, url, result)
            return result
        finally:
            self._send("Target.closeTarget", {"targetId": target})

    @staticmethod
    def _collect(events: list[dict[str, Any]], url: str, result: PageResult) -> None:
        for e in events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                result.console_errors.append(" ".join(str(a.get("value", a.get("description")))
                                                      for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                result.console_errors.append(str(p.get("exceptionDetails", {}).get("text")))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                result.console_errors.append(str(p["entry"].get("text")))
            elif e["method"] == "Network.requestWillBeSent":
                req = p.get("request", {}).get("url", "")
                if req != url and not req.startswith("data:"):
                    result.requests.append(req)
