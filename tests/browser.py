"""Headless Chromium for browser tests, driven over the Chrome DevTools Protocol.

Chromium comes from Debian's ``chromium`` package. :func:`install_chromium` installs
it when it is missing (``apt-get``, as root); it can also be run on its own::

    python -m tests.browser --install

:class:`Browser` starts Chromium with a fresh profile, connects to its DevTools
WebSocket with the ``websockets`` client and opens pages (targets); each
:class:`Page` navigates, evaluates JavaScript and records the events of its
session.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websockets

try:
    from .debian import PackageUnavailable, find_or_install
except ImportError:  # run as a script: python tests/browser.py
    from debian import PackageUnavailable, find_or_install  # type: ignore[no-redef]

__all__ = [
    "Browser",
    "BrowserError",
    "ChromiumUnavailable",
    "NavigatedAway",
    "Page",
    "find_chromium",
    "install_chromium",
]

PACKAGE = "chromium"
BINARY_NAMES = ("chromium", "chromium-browser")
DEFAULT_BINARY = "/usr/bin/chromium"

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)


class ChromiumUnavailable(RuntimeError):
    """Chromium is not installed and could not be installed."""


class BrowserError(RuntimeError):
    """Chromium did not start, or a DevTools command failed."""


class NavigatedAway(BrowserError):
    """A command on a page was cut short because the page navigated: the
    document it ran in is gone, and the same command may work on the next."""


# What DevTools answers (code -32000) when a page's document went away under a command.
NAVIGATION_ERRORS = (
    "Inspected target navigated or closed",
    "Execution context was destroyed",
    "Cannot find default execution context",
)


# --------------------------------------------------------------- installing


def find_chromium() -> str | None:
    """The path of the Chromium binary, or None when it is not installed."""
    for name in BINARY_NAMES:
        path = shutil.which(name)
        if path is not None:
            return path
    if os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    return None


def install_chromium(timeout: float = 1200, quiet: bool = True) -> str:
    """Return the Chromium binary, installing Debian's package first if needed.

    Raises:
        ChromiumUnavailable: it is missing and ``apt-get`` is unavailable, we
            are not root, or the installation failed.
    """
    try:
        return find_or_install(find_chromium, PACKAGE, timeout, quiet)
    except PackageUnavailable as exc:
        raise ChromiumUnavailable(str(exc)) from exc


# ------------------------------------------------------------------ driving


class _Connection:
    """One DevTools WebSocket: numbered commands, answers matched by id, events routed."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._sessions: dict[str, Page] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        error: BaseException = BrowserError("the DevTools connection closed")
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self._pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif "method" in message:
                    page = self._sessions.get(message.get("sessionId", ""))
                    if page is not None:
                        page._event(message["method"], message.get("params", {}))
        except Exception as exc:
            error = BrowserError(f"the DevTools connection failed: {exc!r}")
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            self._pending.clear()

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session_id: str | None = None,
        timeout: float = 10,
    ) -> dict[str, Any]:
        if self._reader.done():
            raise BrowserError("the DevTools connection is closed")
        command_id = next(self._ids)
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        try:
            await self.ws.send(json.dumps(message))
            answer = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(command_id, None)
        if "error" in answer:
            message = str(answer["error"].get("message", ""))
            if message.startswith(NAVIGATION_ERRORS):
                raise NavigatedAway(f"{method} failed: {answer['error']}")
            raise BrowserError(f"{method} failed: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


class Page:
    """A browser tab attached through a flat DevTools session."""

    def __init__(self, connection: _Connection, target_id: str, session_id: str) -> None:
        self._connection = connection
        self.target_id = target_id
        self.session_id = session_id
        #: Every event of this session, in order: ``(method, params)``.
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._event_waiters: list[asyncio.Future[None]] = []

    def _event(self, method: str, params: dict[str, Any]) -> None:
        self.events.append((method, params))
        for waiter in self._event_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._event_waiters.clear()

    async def send(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        """Send a DevTools command to this page; return its result."""
        return await self._connection.send(method, params, self.session_id, timeout)

    async def wait_event(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda params: True,
        timeout: float = 5,
    ) -> dict[str, Any]:
        """The params of the first recorded event ``method`` that satisfies ``predicate``."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for name, params in self.events[seen:]:
                    if name == method and predicate(params):
                        return params
                seen = len(self.events)
                waiter = asyncio.get_running_loop().create_future()
                self._event_waiters.append(waiter)
                await waiter

    async def evaluate(self, expression: str, timeout: float = 10) -> Any:
        """Evaluate JavaScript (awaiting a returned promise); return its value as JSON.

        Raises:
            BrowserError: the expression threw.
        """
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            description = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error: {description}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 5, interval: float = 0.05) -> Any:
        """Poll ``expression`` until it is truthy; return its value. A poll that
        the page's navigating cuts short is asked again on the next document.

        Raises:
            TimeoutError: it stayed falsy for ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = await self.evaluate(expression)
            except NavigatedAway:
                value = None
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"still falsy after {timeout} s: {expression}")
            await asyncio.sleep(interval)

    async def navigate(self, url: str, timeout: float = 10) -> None:
        """Open ``url`` and wait until the document has loaded."""
        result = await self.send("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise BrowserError(f"navigating to {url} failed: {result['errorText']}")
        await self.wait_for(
            f"location.href === {json.dumps(url)} && document.readyState === 'complete'",
            timeout,
        )


class Browser:
    """A headless Chromium process with a throw-away profile.

    Use ``async with Browser() as browser: page = await browser.new_page()``.
    """

    def __init__(self, binary: str | None = None, extra_flags: tuple[str, ...] = ()) -> None:
        self.binary = binary or find_chromium() or DEFAULT_BINARY
        self.extra_flags = extra_flags
        self.profile: str | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.port: int | None = None
        self.websocket_url: str | None = None
        self._connection: _Connection | None = None
        self._log: Any = None

    async def __aenter__(self) -> Browser:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self, timeout: float = 60) -> None:
        """Start Chromium and connect to its DevTools WebSocket."""
        self.profile = tempfile.mkdtemp(prefix="wsserver-chromium-")
        self._log = open(os.path.join(self.profile, "chromium.log"), "wb")  # noqa: SIM115
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            *FLAGS,
            f"--user-data-dir={self.profile}",
            *self.extra_flags,
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,  # its own process group, to clean up its helpers
        )
        port_file = Path(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while True:
            if self.process.returncode is not None:
                raise BrowserError(
                    f"chromium exited with {self.process.returncode}: {self.log_tail()}"
                )
            lines = port_file.read_text().split("\n") if port_file.exists() else []
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
                break
            if time.monotonic() >= deadline:
                raise BrowserError(f"chromium did not open its DevTools port: {self.log_tail()}")
            await asyncio.sleep(0.05)
        self.port = int(lines[0])
        self.websocket_url = f"ws://127.0.0.1:{self.port}{lines[1].strip()}"
        ws = await websockets.connect(
            self.websocket_url, max_size=None, open_timeout=timeout, ping_interval=None
        )
        self._connection = _Connection(ws)

    def log_tail(self, size: int = 2000) -> str:
        """The end of Chromium's stdout and stderr."""
        if self.profile is None:
            return ""
        try:
            return Path(self.profile, "chromium.log").read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a browser-level DevTools command."""
        if self._connection is None:
            raise BrowserError("the browser is not started")
        return await self._connection.send(method, params)

    async def new_page(self, url: str = "about:blank") -> Page:
        """Open a new target and attach to it."""
        if self._connection is None:
            raise BrowserError("the browser is not started")
        created = await self.send("Target.createTarget", {"url": "about:blank"})
        target_id = created["targetId"]
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target_id, "flatten": True}
        )
        page = Page(self._connection, target_id, attached["sessionId"])
        self._connection._sessions[page.session_id] = page
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        if url != "about:blank":
            await page.navigate(url)
        return page

    async def close(self) -> None:
        """Close Chromium (terminate, then kill) and remove its profile."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.send("Browser.close", timeout=2), 2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)
        process = self.process
        if process is not None:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 3)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
            # Renderers and other helpers left in Chromium's process group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--install", action="store_true", help="install Debian's chromium package if missing"
    )
    args = parser.parse_args(argv)
    if not args.install:
        path = find_chromium()
        print(path or "chromium is not installed")
        return 0 if path else 1
    started = time.monotonic()
    try:
        path = install_chromium(quiet=False)
    except ChromiumUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"chromium: {path} (ready in {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
